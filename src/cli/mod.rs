//! The `fitrank` binary's commands beside `serve`: the gRPC client ([`call`]) and the hand-off of
//! the lab's and the instruments' commands to their own binaries ([`external`]).

mod call;
pub mod external;

pub use call::{CallArgs, call};
