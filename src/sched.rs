//! How fitrank's threads ask the OS scheduler for their share of the CPU.
//!
//! Two requests, both per thread and both only hints (they never fail a caller):
//!
//! - [`lower_priority`]: background work (the feature-log writer) runs at nice 10, so that on a
//!   busy machine request threads run first and the background queue absorbs the delay.
//! - [`request_slice`]: a latency-sensitive thread asks for a short time slice. Linux's EEVDF
//!   scheduler (6.12 and later) reads `sched_attr.sched_runtime` of a normal-class thread as the
//!   slice it wants (0.1–100 ms; the default is 0.7 ms × (1 + log2 CPUs), 1.4 ms on 2 cores). A
//!   shorter slice gives the thread an earlier virtual deadline when it wakes, so it preempts a
//!   thread that is in the middle of a long slice instead of waiting for that slice to end. It
//!   takes no CPU share from anyone: the thread only gets its turn sooner and shorter. Older
//!   kernels accept the value and ignore it. No privilege is needed.
//!
//! The load generator (`fitrank bench`) uses [`request_slice`] for its client threads: on a
//! machine it shares with the server, its own wait for a core would otherwise be counted as the
//! server's latency (BENCHMARKS, "the load generator's own wait for a core").

use std::time::Duration;

/// Lowers the calling thread's CPU priority to nice 10.
pub fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take no pointers; failure only leaves the priority unchanged.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// Asks the scheduler to give the calling thread time slices of `slice` (the kernel clamps it to
/// 0.1–100 ms). Threads of a real-time or idle class are left as they are. Returns the error of
/// the system call if the kernel refused; on other systems than Linux it does nothing.
pub fn request_slice(slice: Duration) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        linux::request_slice(slice)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = slice;
        Ok(())
    }
}

/// The slice the calling thread runs with, as the kernel reports it (`None` where it does not).
pub fn current_slice() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        linux::get().ok().map(|a| Duration::from_nanos(a.sched_runtime)).filter(|d| !d.is_zero())
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::time::Duration;

    /// `struct sched_attr` of `<linux/sched/types.h>`, its first version (48 bytes).
    #[repr(C)]
    #[derive(Default)]
    pub struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        pub sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
    }

    const SCHED_OTHER: u32 = 0;
    const SCHED_BATCH: u32 = 3;
    const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;

    pub fn get() -> std::io::Result<SchedAttr> {
        let mut attr = SchedAttr::default();
        let size = std::mem::size_of::<SchedAttr>() as libc::c_uint;
        // SAFETY: `attr` is a valid, writable sched_attr of `size` bytes; pid 0 is this thread.
        let r = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut attr as *mut SchedAttr, size, 0) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(attr)
    }

    pub fn request_slice(slice: Duration) -> std::io::Result<()> {
        let mut attr = get()?;
        if attr.sched_policy != SCHED_OTHER && attr.sched_policy != SCHED_BATCH {
            return Ok(());
        }
        attr.size = std::mem::size_of::<SchedAttr>() as u32;
        attr.sched_flags &= SCHED_FLAG_RESET_ON_FORK;
        attr.sched_runtime = u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX);
        // SAFETY: `attr` is a valid sched_attr whose size field matches; the policy and nice value
        // are the thread's own, read just above, so only the requested slice changes.
        let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requested_slice_is_what_the_thread_then_runs_with() {
        std::thread::spawn(|| {
            request_slice(Duration::from_micros(300)).expect("sched_setattr");
            if cfg!(target_os = "linux") {
                // Kernels before 6.12 accept the value without reporting it back.
                if let Some(slice) = current_slice() {
                    assert_eq!(slice, Duration::from_micros(300));
                }
            }
            // the nice value is kept
            lower_priority();
            request_slice(Duration::from_micros(200)).expect("sched_setattr");
            #[cfg(target_os = "linux")]
            // SAFETY: getpriority takes no pointers.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                assert_eq!(libc::getpriority(libc::PRIO_PROCESS, tid), 10);
            }
        })
        .join()
        .unwrap();
    }
}
