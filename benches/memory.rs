//! Memory per stored user and per live session in the embedded store, measured with a counting
//! global allocator (bytes requested from the allocator, live after the inserts) and with the
//! process's resident set (which adds allocator overhead and fragmentation). The counting
//! allocator forwards to mimalloc, the allocator the `fitrank` binary ships with, so the resident
//! figures are the service's.
//!
//! `cargo bench --bench memory`

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};

use mimalloc::MiMalloc;

use fitrank::domain::{
    AgeBand, Category, Event, EventKind, Gender, LiveSession, PriceBand, SessionStatus, TargetAudience, UserProfile,
};
use fitrank::store::{EmbeddedStore, EmbeddedStoreConfig, Store};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to mimalloc and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

unsafe extern "C" {
    /// mimalloc's own API (linked in by the `mimalloc` crate): returns freed pages to the OS.
    fn mi_collect(force: bool);
}

/// The resident set once mimalloc has returned the pages freed so far. mimalloc does so by itself
/// some milliseconds after a free (its purge delay); without this the figures would count
/// transient buffers of the inserts (batches, write-ahead-log frames, the map's old tables).
fn rss_bytes() -> isize {
    // SAFETY: mi_collect takes no pointers and may be called at any time.
    unsafe { mi_collect(true) };
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: isize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn user(i: usize) -> UserProfile {
    UserProfile {
        age_band: AgeBand::ALL[1 + i % 7],
        gender: Gender::ALL[1 + i % 3],
        region: ["US-CA", "US-NY", "GB", "DE-BE"][i % 4].into(),
        language: ["en", "en", "en", "de"][i % 4].into(),
        interests: if i.is_multiple_of(3) { vec!["running".into()] } else { vec![] },
    }
}

fn session(i: usize) -> LiveSession {
    LiveSession {
        session_id: format!("session-{i:08}"),
        host_id: format!("host-{:06}", i / 3),
        category: Category::ALL[i % Category::COUNT],
        price_band: PriceBand::ALL[i % PriceBand::COUNT],
        language: "en".into(),
        region: "US".into(),
        start_time_ms: 1_700_000_000_000,
        status: SessionStatus::Live,
        end_time_ms: 0,
        target: TargetAudience {
            min_age: 20,
            max_age: 35,
            genders: vec![Gender::Female],
            regions: vec!["US".into()],
            interests: vec![],
        },
    }
}

fn main() {
    // `cargo bench` passes --bench; ignore arguments.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&EmbeddedStoreConfig {
        data_dir: dir.path().to_owned(),
        fsync: false,
        dedup_window_ms: 0, // ids expire at once: measure state, not the de-duplication window
    })
    .unwrap();
    const USERS: usize = 200_000;
    const SESSIONS: usize = 20_000;

    let (heap0, rss0) = (LIVE.load(Ordering::Relaxed), rss_bytes());
    for chunk in (0..USERS).collect::<Vec<_>>().chunks(10_000) {
        let batch = chunk.iter().map(|i| (format!("user-{i:09}"), user(*i))).collect();
        rt.block_on(store.upsert_users(batch)).unwrap();
    }
    let (heap1, rss1) = (LIVE.load(Ordering::Relaxed), rss_bytes());
    println!(
        "stored users: {:.0} B/user allocated, {:.0} B/user resident ({USERS} users with profiles, no activity)",
        (heap1 - heap0) as f64 / USERS as f64,
        (rss1 - rss0) as f64 / USERS as f64
    );

    let (heap4, rss4) = (LIVE.load(Ordering::Relaxed), rss_bytes());
    for chunk in (0..SESSIONS).collect::<Vec<_>>().chunks(5_000) {
        rt.block_on(store.upsert_sessions(chunk.iter().map(|i| session(*i)).collect())).unwrap();
    }
    let (heap5, rss5) = (LIVE.load(Ordering::Relaxed), rss_bytes());
    println!(
        "live sessions: {:.0} B/session allocated, {:.0} B/session resident ({SESSIONS} sessions with targets and live stats)",
        (heap5 - heap4) as f64 / SESSIONS as f64,
        (rss5 - rss4) as f64 / SESSIONS as f64
    );
    // Activity for users who engaged: one view each on some session.
    let events: Vec<Event> = (0..USERS)
        .map(|i| Event {
            event_id: format!("e{i}"),
            kind: EventKind::View,
            user_id: format!("user-{i:09}"),
            session_id: "warm".into(),
            time_ms: 1_700_000_000_000,
            ranking_id: String::new(),
            position: 0,
            watch_seconds: 0.0,
            amount: 0.0,
            order_id: String::new(),
        })
        .collect();
    rt.block_on(store.upsert_sessions(vec![LiveSession { session_id: "warm".into(), ..session(0) }])).unwrap();
    let (heap2, rss2) = (LIVE.load(Ordering::Relaxed), rss_bytes());
    for chunk in events.chunks(10_000) {
        rt.block_on(store.ingest(chunk.to_vec())).unwrap();
    }
    let (heap3, rss3) = (LIVE.load(Ordering::Relaxed), rss_bytes());
    drop(events);
    println!(
        "user activity: {:.0} B/user allocated, {:.0} B/user resident (added when a user has events)",
        (heap3 - heap2) as f64 / USERS as f64,
        (rss3 - rss2) as f64 / USERS as f64
    );
}
