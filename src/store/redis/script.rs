//! The Lua scripts Redis runs. On a cluster each call touches keys of one hash tag only, so it
//! runs atomically on one node; on standalone Redis [`APPLY_FRESH`] (when every event is new and
//! every session has stats) or else [`APPLY_EVENTS`] applies a group of events across sessions and
//! users in one call.
//!
//! Applying an event is cheap native work: its id is checked against and added to the
//! de-duplication sets (markers on a cluster), and its records join its blobs (see `codec`);
//! nothing is decoded or re-encoded in Lua. A call writes each blob it touches once, with the
//! records of all its events in that call, so the cost per event falls as a call's events share
//! sessions and users. Blobs grown past their compaction size are named to the caller, which
//! reads them, folds them in Rust and writes them back with [`COMPACT`].

use std::sync::LazyLock;

use redis::Script;

/// What the apply scripts share: the blobs. `grown` says whether an append of `len - before`
/// bytes grew a blob past its compaction size `limit` (or four times past it: a compaction that
/// failed), so that concurrent calls do not compact one blob again and again; [`APPLY_FRESH`]
/// uses only it.
///
/// A blob is a table `{ key, must_key, must, ttl, limit, arg, stride }` (`ttl` in ms, a string,
/// or nil to keep the key's; event e's record for it is `ARGV[arg + stride * e]`). `add` lists an
/// event's record for the blob; `finish` appends the records of its events not in `dead` to each
/// blob with one `APPEND`. A blob that `APPEND` creates while its `must_key` is gone (its
/// session's attributes) is deleted, and its events are added to `dead`, so that the caller
/// applies them nowhere (blobs are finished in order: sessions before users). A created blob takes
/// its session's TTL (an ended session's stats expire with it); a blob with a `ttl` (a user's
/// activity) gets it anew. `finish` returns the numbers of the blobs this call has `grown`.
const PRELUDE: &str = r#"
local function grown(before, len, limit)
  return (before <= limit and len > limit) or len > 4 * limit
end
local function add(b, e)
  if not b.events then b.events = {} end
  b.events[#b.events + 1] = e
end
local function write(b, records)
  local n = redis.call('APPEND', b.key, records)
  if n == #records and b.must then
    local ttl = redis.call('PTTL', b.must_key)
    if ttl == -2 then
      redis.call('DEL', b.key)
      b.gone = true
    elseif ttl > 0 then
      redis.call('PEXPIRE', b.key, ttl)
    end
  end
  if b.ttl and not b.gone then redis.call('PEXPIRE', b.key, b.ttl) end
  return n - #records, n
end
local function finish(blobs, dead)
  local big = {}
  for i, b in ipairs(blobs) do
    local parts = {}
    for _, e in ipairs(b.events or {}) do
      if not dead[e] then parts[#parts + 1] = ARGV[b.arg + b.stride * e] end
    end
    if #parts > 0 then
      local before, len = write(b, table.concat(parts))
      if b.gone then
        for _, e in ipairs(b.events) do dead[e] = true end
      elseif grown(before, len, b.limit) then
        big[#big + 1] = i
      end
    end
  end
  return big
end
"#;

/// De-duplication on standalone Redis: event ids live in sets, one per time bucket of half the
/// de-duplication window. KEYS[1] is the bucket ids are added to; KEYS[1..4] are all checked (the
/// current bucket, the two before it, and the next one, for replicas whose clocks run behind);
/// KEYS[5], the bucket before those, is unlinked (freed off Redis's main thread: a bucket holds
/// half a window of events). An id is thus remembered for at least the window. A bucket that does
/// not exist (the next one, unless a replica's clock runs ahead) is not asked about its ids: a
/// call's ids cost Redis one set lookup per existing bucket and one insert.
const DEDUP: &str = r#"
local function slices(list, f)
  for i = 1, #list, 1000 do f({ unpack(list, i, math.min(i + 999, #list)) }) end
end
local function seen_before(ids)
  local seen = {}
  if #ids == 0 then return seen end
  for k = 1, 4 do
    local j = 0
    if redis.call('EXISTS', KEYS[k]) == 1 then
      slices(ids, function(part)
        for _, x in ipairs(redis.call('SMISMEMBER', KEYS[k], unpack(part))) do
          j = j + 1
          if x == 1 then seen[ids[j]] = true end
        end
      end)
    end
  end
  return seen
end
local function remember(ids, expire_at)
  slices(ids, function(part) redis.call('SADD', KEYS[1], unpack(part)) end)
  if #ids > 0 then redis.call('PEXPIREAT', KEYS[1], expire_at) end
  redis.call('UNLINK', KEYS[5])
end
"#;

/// Applies a group of events to their sessions' stats and users' activity on standalone Redis,
/// each event once, to both blobs or to neither.
///
/// KEYS: 1..5 the de-duplication buckets (see [`DEDUP`]); then per session: its stats and its
/// attributes (which must exist for the stats to be created); then per user: its activity.
/// ARGV: 1 = the current bucket's expiry (ms since the epoch), 2 = number of sessions S,
/// 3 = number of users U, 4 = stats' compaction size (bytes), 5 = activity's TTL (ms),
/// 6 = activity's compaction size, 7 = per event its session's and its user's numbers (1-based,
/// u16 little-endian each); then per event: its id, the session record, the user record. (Few
/// strings per event: Lua interns and collects each one.)
/// Returns `{ codes, big }`: one code per event (1 applied now, 0 applied before, -1 the session's
/// attributes are missing: nothing applied), and the numbers of the blobs past their compaction
/// size (sessions first, then users). The caller reads those itself: a blob's bytes would cost
/// Redis a Lua string, and its collection, on the way out.
pub static APPLY_EVENTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PRELUDE}{DEDUP}{}",
        r#"
local expire_at = ARGV[1]
local S, U, slimit, ttl, ulimit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local blobs = {}
for i = 1, S do
  blobs[i] = { key = KEYS[4 + 2 * i], must_key = KEYS[5 + 2 * i], must = true, limit = slimit, arg = 6, stride = 3 }
end
for i = 1, U do
  blobs[S + i] = { key = KEYS[5 + 2 * S + i], ttl = ttl, limit = ulimit, arg = 7, stride = 3 }
end
local index, byte = ARGV[7], string.byte
local n = (#ARGV - 7) / 3
local ids = {}
for e = 1, n do ids[e] = ARGV[5 + 3 * e] end
local seen = seen_before(ids)
local out, first = {}, {}
for e = 1, n do
  local id = ids[e]
  if seen[id] then
    out[e] = 0
  else
    seen[id], first[id], out[e] = true, e, 1
    local p = 4 * e - 3
    add(blobs[byte(index, p) + 256 * byte(index, p + 1)], e)
    add(blobs[S + byte(index, p + 2) + 256 * byte(index, p + 3)], e)
  end
end
local dead = {}
local big = finish(blobs, dead)
local fresh = {}
for e = 1, n do
  local f = first[ids[e]]
  if f and dead[f] then
    out[e] = -1
  elseif out[e] == 1 then
    fresh[#fresh + 1] = ids[e]
  end
end
remember(fresh, expire_at)
return { out, big }
"#
    ))
});

/// The common case of [`APPLY_EVENTS`] without its per-event work: every event of the group is
/// new (no id in the de-duplication sets) and every session's stats already exist (so no must-key
/// can be missing). The caller sends each blob's records already joined in event order, exactly
/// the bytes [`APPLY_EVENTS`] would append, and the script checks both conditions before it
/// writes anything; when either fails it writes nothing and answers `{ 0 }`, and the caller sends
/// the group to [`APPLY_EVENTS`], which sorts the events out one by one. A retried batch, or the
/// first events of a session, thus take one extra round trip; the rest cost Redis one `APPEND`
/// per blob and, per event, a lookup in each existing de-duplication bucket (three in steady
/// state) and an insert, with no Lua string or table per event.
///
/// A user's activity gets its TTL when the append creates it or when the caller asks (see
/// `renew`), not on every write.
///
/// KEYS: 1..5 the de-duplication buckets (see [`DEDUP`]); then S sessions' stats; then U users'
/// activity.
/// ARGV: 1..6 as [`APPLY_EVENTS`]; 7 = number of events n; 8 = one byte per user, 1 to renew
/// their activity's TTL; then the n event ids (distinct); then one string per blob (sessions,
/// then users): the records of its events.
/// Returns `{ 1, big }` (every event applied now; `big` as [`APPLY_EVENTS`]'s) or `{ 0 }`.
pub static APPLY_FRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PRELUDE}{}",
        r#"
local expire_at, S, U = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local slimit, ttl, ulimit, n, renew = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local function slices(first, last, f)
  for i = first, last, 1000 do f(i, math.min(i + 999, last)) end
end
for k = 1, 4 do
  local seen = false
  if redis.call('EXISTS', KEYS[k]) == 1 then
    slices(9, 8 + n, function(i, j)
      for _, x in ipairs(redis.call('SMISMEMBER', KEYS[k], unpack(ARGV, i, j))) do
        if x == 1 then seen = true end
      end
    end)
  end
  if seen then return { 0 } end
end
local existing = 0
slices(6, 5 + S, function(i, j) existing = existing + redis.call('EXISTS', unpack(KEYS, i, j)) end)
if existing < S then return { 0 } end
local big = {}
for b = 1, S + U do
  local key, records = KEYS[5 + b], ARGV[8 + n + b]
  local len, limit = redis.call('APPEND', key, records), slimit
  if b > S then
    limit = ulimit
    if len == #records or string.byte(renew, b - S) == 1 then redis.call('PEXPIRE', key, ttl) end
  end
  if len > limit and grown(len - #records, len, limit) then
    big[#big + 1] = b
  end
end
slices(9, 8 + n, function(i, j) redis.call('SADD', KEYS[1], unpack(ARGV, i, j)) end)
if n > 0 then redis.call('PEXPIREAT', KEYS[1], expire_at) end
redis.call('UNLINK', KEYS[5])
return { 1, big }
"#
    ))
});

/// Applies events to one blob on Redis Cluster (whose keys, sharing a hash tag, are on one node),
/// each event once per blob: a session's and a user's blob are on different nodes, so each keeps
/// its own marker per event (`SET NX PX`: a call per event, where the standalone store's shared
/// sets cost a few calls per script call — and on a cluster a call covers one blob, often one
/// event).
///
/// KEYS: 1 = the blob, 2 = the key that must exist for a new blob to be created, 3.. = one marker
/// per event.
/// ARGV: 1 = the markers' TTL (ms), 2 = TTL set on each write (ms; "0" keeps the key's),
/// 3 = must-exist flag, 4 = compaction size, then one record per event.
/// Returns `{ codes, big }` as [`APPLY_EVENTS`] does (the blob's number is 1).
pub static APPLY_GROUP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PRELUDE}{}",
        r#"
local blob = { key = KEYS[1], must_key = KEYS[2], ttl = ARGV[2] ~= '0' and ARGV[2] or nil, must = ARGV[3] == '1',
               limit = tonumber(ARGV[4]), arg = 4, stride = 1 }
local out = {}
for e = 1, #KEYS - 2 do
  if redis.call('SET', KEYS[2 + e], '1', 'NX', 'PX', ARGV[1]) then
    out[e] = 1
    add(blob, e)
  else
    out[e] = 0
  end
end
local dead = {}
local big = finish({ blob }, dead)
for e = 1, #out do
  if dead[e] then
    redis.call('DEL', KEYS[2 + e])
    out[e] = -1
  end
end
return { out, big }
"#
    ))
});

/// Replaces the start of each blob that a caller read and folded (`codec::Kind::compacted`) with
/// the folded state, keeping whatever was appended since and the key's TTL; leaves a blob alone
/// when its start is no longer what was read (another replica compacted it first, or it expired).
/// On standalone Redis one call compacts all the blobs an apply call returned; on a cluster, one
/// blob per call (its keys are on different nodes).
///
/// KEYS: the blobs. ARGV: per blob, the bytes read and the state that replaces them.
/// Returns the number of blobs replaced.
pub static COMPACT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local done = 0
for i, key in ipairs(KEYS) do
  local read, state = ARGV[2 * i - 1], ARGV[2 * i]
  local n = #read
  if redis.call('GETRANGE', key, 0, n - 1) == read then
    local rest = redis.call('GETRANGE', key, n, -1)
    redis.call('SET', key, state .. rest, 'KEEPTTL')
    done = done + 1
  end
end
return done
"#,
    )
});

/// Replaces a versioned document if its version is still the expected one.
///
/// KEYS: 1 = hash with fields `doc` and `v`. ARGV: 1 = expected version (0 = absent), 2 = new doc.
/// Returns the new version, or -1 when the stored version differs.
pub static CAS_DOC: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return -1 end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'v', v + 1)
return v + 1
"#,
    )
});

/// Stores a session's attributes and keeps the live index in step: KEYS 1 = attributes,
/// 2 = stats. ARGV: 1 = attributes (postcard), 2 = retention ms when ended (0 = persist).
/// The live index is a separate key (another slot in a cluster) and is updated by the caller.
pub static PUT_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('SET', KEYS[1], ARGV[1])
local ms = tonumber(ARGV[2])
if ms > 0 then
  redis.call('PEXPIRE', KEYS[1], ms)
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ms) end
else
  redis.call('PERSIST', KEYS[2])
end
return 1
"#,
    )
});
