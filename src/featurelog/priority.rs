//! The writer thread's CPU class: out of the request threads' way, without falling behind.
//!
//! The writer wakes once per batch of 32 rankings ([`super::queue`]) and then works for about
//! 1.4 ms (43 µs per ranking, computing the rows and encoding them). At nice 10, the scheduler
//! still lets such a burst finish its slice before a request thread that wakes on the same core
//! gets it back. Measured at 2,600 rankings/s on the 2-core machine (docs/BENCHMARKS.md), requests
//! had a p90 of 1.62–1.66 ms with the writer at nice 10, and 0.53–0.58 ms with it in Linux's
//! `SCHED_IDLE` class. A task of any normal class that wakes preempts an idle-class one at once.
//!
//! On a saturated machine, though, an idle-class thread gets almost no CPU. Its queue would
//! overflow, and rankings would be dropped from the log. So the writer switches class by backlog
//! ([`Class::after_take`]):
//! - **Idle class** while it keeps up.
//! - **Normal class at nice 10** (the former setting) from the moment its queue holds
//!   [`super::queue::Queue::backlog`] rankings. Whoever sees that first raises it: the request
//!   thread whose push reaches the mark ([`WriterPriority::raise`]), or the writer on taking such a
//!   batch.
//! - **Idle again** once a take finds no more than one wake-up batch.
//!
//! Leaving the idle class takes `CAP_SYS_NICE` or an `RLIMIT_NICE` of at least 10. A probe at
//! start checks it on a scratch thread. Where it is not allowed, the writer stays at nice 10 all
//! the time, as before, rather than risk being stuck in the idle class.

use std::sync::atomic::{AtomicI32, Ordering};

use super::queue::WAKE_BATCH;

/// A CPU class of the writer thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `SCHED_IDLE`: runs only when no normal thread wants the core.
    Idle,
    /// `SCHED_OTHER` at nice 10: a small but fair share, to catch up.
    Normal,
}

impl Class {
    /// The class after a take of `taken` rankings, for a queue whose backlog mark is `backlog`:
    /// normal from the mark, idle at one wake-up batch or less, unchanged in between.
    pub fn after_take(self, taken: usize, backlog: usize) -> Class {
        if taken >= backlog {
            Class::Normal
        } else if taken <= WAKE_BATCH {
            Class::Idle
        } else {
            self
        }
    }
}

/// The writer thread's id and whether it may use the idle class.
#[derive(Debug)]
pub struct WriterPriority {
    /// Kernel thread id of the writer, once it has started (0 before).
    tid: AtomicI32,
    /// Whether the idle class can be left again (probed at start).
    switching: bool,
}

impl WriterPriority {
    /// Probes whether this process may leave the idle class.
    pub fn new() -> WriterPriority {
        WriterPriority { tid: AtomicI32::new(0), switching: can_leave_idle() }
    }

    /// Called on the writer thread when it starts: nice 10, then the idle class where switching
    /// is allowed. Returns the class it runs in.
    pub fn start(&self) -> Class {
        let tid = current_tid();
        self.tid.store(tid, Ordering::Release);
        set_nice(tid, 10);
        if self.switching && set_class(tid, Class::Idle) { Class::Idle } else { Class::Normal }
    }

    /// On the writer thread: moves it to `class` if that differs from `current`; returns the
    /// class it runs in.
    pub fn switch(&self, current: Class, class: Class) -> Class {
        if !self.switching || class == current {
            return current;
        }
        if set_class(self.tid.load(Ordering::Acquire), class) { class } else { current }
    }

    /// From any thread: moves the writer to the normal class now (its backlog reached the mark).
    pub fn raise(&self) {
        let tid = self.tid.load(Ordering::Acquire);
        if self.switching && tid != 0 {
            set_class(tid, Class::Normal);
        }
    }

    /// Whether the writer switches between classes at all.
    pub fn switching(&self) -> bool {
        self.switching
    }
}

#[cfg(target_os = "linux")]
fn current_tid() -> i32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

#[cfg(not(target_os = "linux"))]
fn current_tid() -> i32 {
    0
}

#[cfg(target_os = "linux")]
fn set_nice(tid: i32, nice: i32) {
    // SAFETY: setpriority takes no pointers; failure only leaves the priority unchanged.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
    }
}

#[cfg(not(target_os = "linux"))]
fn set_nice(_tid: i32, _nice: i32) {}

/// Puts thread `tid` into `class`; false if the kernel refused.
#[cfg(target_os = "linux")]
fn set_class(tid: i32, class: Class) -> bool {
    let policy = match class {
        Class::Idle => libc::SCHED_IDLE,
        Class::Normal => libc::SCHED_OTHER,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param that outlives the call; the kernel only reads it.
    unsafe { libc::sched_setscheduler(tid, policy, &param) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn set_class(_tid: i32, _class: Class) -> bool {
    false
}

/// Whether a thread of this process at nice 10 may go from the idle class back to the normal
/// one, tried on a scratch thread.
fn can_leave_idle() -> bool {
    std::thread::spawn(|| {
        let tid = current_tid();
        set_nice(tid, 10);
        set_class(tid, Class::Idle) && set_class(tid, Class::Normal)
    })
    .join()
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_follows_the_backlog_with_hysteresis() {
        let backlog = 1_024;
        for current in [Class::Idle, Class::Normal] {
            assert_eq!(current.after_take(backlog, backlog), Class::Normal);
            assert_eq!(current.after_take(4_096, backlog), Class::Normal);
            assert_eq!(current.after_take(WAKE_BATCH, backlog), Class::Idle);
            assert_eq!(current.after_take(0, backlog), Class::Idle);
            // In between, the class stays as it is.
            assert_eq!(current.after_take(WAKE_BATCH + 1, backlog), current);
            assert_eq!(current.after_take(backlog - 1, backlog), current);
        }
    }

    /// The writer thread's class, as the kernel reports it.
    #[cfg(target_os = "linux")]
    fn policy_of(tid: i32) -> i32 {
        // SAFETY: sched_getscheduler takes no pointers.
        unsafe { libc::sched_getscheduler(tid) }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_writer_starts_idle_and_is_raised_from_another_thread() {
        let priority = std::sync::Arc::new(WriterPriority::new());
        if !priority.switching() {
            // Not allowed here (no CAP_SYS_NICE and a low RLIMIT_NICE): the writer stays normal.
            let p = std::sync::Arc::clone(&priority);
            assert_eq!(std::thread::spawn(move || p.start()).join().unwrap(), Class::Normal);
            return;
        }
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let p = std::sync::Arc::clone(&priority);
        let writer = std::thread::spawn(move || {
            let class = p.start();
            started_tx.send((current_tid(), class)).unwrap();
            go_rx.recv().unwrap();
            // Back to idle, as after a small take.
            p.switch(Class::Normal, Class::Normal.after_take(1, 1_024))
        });
        let (tid, class) = started_rx.recv().unwrap();
        assert_eq!(class, Class::Idle);
        assert_eq!(policy_of(tid), libc::SCHED_IDLE);
        priority.raise();
        assert_eq!(policy_of(tid), libc::SCHED_OTHER);
        go_tx.send(()).unwrap();
        assert_eq!(writer.join().unwrap(), Class::Idle);
    }
}
