//! The hand-over from request threads to the feature-log writer: a bounded queue that wakes the
//! writer once per batch of rankings, not once per ranking.
//!
//! A channel wakes its receiver on every send once the receiver has caught up and sleeps: each
//! ranking then costs a futex wake on the request thread and a context switch of the writer, and
//! on a 2-core machine serving thousands of rankings a second both compete with the request
//! threads. Here a sender only pushes under a mutex. The writer is woken when [`WAKE_BATCH`] items
//! are waiting, when an urgent item arrives (a flush request) or when the queue closes; otherwise
//! it wakes on its own timer (the flush interval), so no item waits longer than that.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Items waiting before a push wakes the writer.
pub const WAKE_BATCH: usize = 32;

/// What became of a pushed item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The queue held `capacity` items: the item was dropped.
    Full,
    /// The queue is closed: the item was dropped.
    Closed,
}

/// A bounded multi-producer, single-consumer queue with batched wake-ups.
#[derive(Debug)]
pub struct Queue<T> {
    state: Mutex<State<T>>,
    wake: Condvar,
    capacity: usize,
}

#[derive(Debug)]
struct State<T> {
    items: Vec<T>,
    /// An urgent item is waiting: the consumer must not sleep.
    urgent: bool,
    closed: bool,
}

impl<T> Queue<T> {
    /// A queue that holds at most `capacity` ordinary items (at least one).
    pub fn new(capacity: usize) -> Self {
        Queue {
            state: Mutex::new(State { items: Vec::new(), urgent: false, closed: false }),
            wake: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an item unless the queue is closed, or full for an ordinary item; an urgent item is
    /// never refused for space and wakes the consumer at once.
    pub fn push(&self, item: T, urgent: bool) -> Pushed {
        let mut state = self.lock();
        if state.closed {
            return Pushed::Closed;
        }
        if !urgent && state.items.len() >= self.capacity {
            return Pushed::Full;
        }
        state.items.push(item);
        state.urgent |= urgent;
        let wake = urgent || state.items.len() == WAKE_BATCH;
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        Pushed::Queued
    }

    /// Closes the queue: later pushes are refused; the consumer takes what is left, then sees
    /// the end.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// Waits up to `timeout` unless a batch, an urgent item or the close is already there, then
    /// moves every waiting item, in push order, into `out` (which must be empty). Returns false
    /// once the queue is closed and nothing was left to take.
    pub fn take(&self, timeout: Duration, out: &mut Vec<T>) -> bool {
        debug_assert!(out.is_empty());
        let mut state = self.lock();
        if !state.urgent && !state.closed && state.items.len() < WAKE_BATCH {
            state = self.wake.wait_timeout(state, timeout).unwrap_or_else(|e| e.into_inner()).0;
        }
        std::mem::swap(&mut state.items, out);
        state.urgent = false;
        !(state.closed && out.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn items_come_out_in_order_and_capacity_refuses_only_ordinary_items() {
        let q = Queue::new(3);
        for i in 0..3 {
            assert_eq!(q.push(i, false), Pushed::Queued);
        }
        assert_eq!(q.push(3, false), Pushed::Full);
        assert_eq!(q.push(4, true), Pushed::Queued);
        let mut out = Vec::new();
        assert!(q.take(Duration::from_secs(60), &mut out), "urgent: no wait, still open");
        assert_eq!(out, vec![0, 1, 2, 4]);
        q.close();
        assert_eq!(q.push(5, true), Pushed::Closed);
        out.clear();
        assert!(!q.take(Duration::from_secs(60), &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn the_consumer_wakes_for_a_batch_an_urgent_item_or_the_close_and_otherwise_on_its_timer() {
        let q = Arc::new(Queue::new(1_000));
        let mut out = Vec::new();
        // Nothing comes: the timer ends the wait.
        assert!(q.take(Duration::from_millis(30), &mut out));
        assert!(out.is_empty());

        // A batch wakes a consumer that would otherwise sleep for a minute; so does an urgent
        // item, and so does the close, which still hands over what was queued.
        for (items, urgent, close) in [(WAKE_BATCH, false, false), (1, true, false), (2, false, true)] {
            let producer = Arc::clone(&q);
            let handle = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                for i in 0..items {
                    producer.push(i, urgent && i + 1 == items);
                }
                if close {
                    producer.close();
                }
            });
            out.clear();
            let start = Instant::now();
            q.take(Duration::from_secs(60), &mut out);
            // The consumer may wake before every item is in (a batch's wake comes with the
            // last of them here); it never sleeps past the minute.
            handle.join().unwrap();
            let mut rest = Vec::new();
            if out.len() < items {
                q.take(Duration::from_millis(1), &mut rest);
            }
            assert_eq!(out.len() + rest.len(), items, "urgent {urgent} close {close}");
            assert!(start.elapsed() < Duration::from_secs(30), "woken, not timed out");
        }
        let mut end = Vec::new();
        assert!(!q.take(Duration::from_secs(60), &mut end), "closed and empty");
    }
}
