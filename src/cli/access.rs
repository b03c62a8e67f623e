//! `fitrank access`: makes the bearer tokens the access file lists (only their hashes are stored).

use clap::{Args, Subcommand};

use crate::access::{Role, new_token};

/// Arguments of `fitrank access`.
#[derive(Args, Debug)]
pub struct AccessArgs {
    #[command(subcommand)]
    command: AccessCommand,
}

#[derive(Subcommand, Debug)]
enum AccessCommand {
    /// Make a new random token: prints the token (give it to the client; it is stored nowhere)
    /// and the access-file entry that grants it its roles.
    Token {
        /// The name the audit log records for this token's calls (e.g. the client's service).
        #[arg(long)]
        name: String,
        /// A role: feed, operator or viewer (repeat for several).
        #[arg(long = "role", required = true, value_parser = parse_role)]
        roles: Vec<Role>,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::from_name(s).ok_or_else(|| "expected feed, operator or viewer".into())
}

/// Runs one `fitrank access` command.
pub fn access(args: AccessArgs) -> Result<(), super::CommandError> {
    match args.command {
        AccessCommand::Token { name, roles } => {
            if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                return Err("--name: 1 to 64 characters, no control characters".into());
            }
            let (token, hash) = new_token()?;
            let roles = roles.iter().map(|r| format!("{:?}", r.name())).collect::<Vec<_>>().join(", ");
            eprintln!("token (give it to the client; it is not stored anywhere):");
            eprintln!("{token}");
            eprintln!("\nentry for the access file:");
            println!("[[token]]\nname = {}\nroles = [{roles}]\nsha256 = \"{hash}\"", toml_string(&name));
            Ok(())
        }
    }
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
