//! The Lua scripts Redis runs. On a cluster each call touches keys of one hash tag only, so it
//! runs atomically on one node; on standalone Redis [`APPLY_EVENTS`] applies a chunk of a batch
//! across sessions and users in one call.
//!
//! Applying an event is cheap native work: its id is checked against and added to the
//! de-duplication sets (markers on a cluster), and its records are appended to its blobs (see
//! `codec`); nothing is decoded or re-encoded in Lua. Blobs grown past their compaction size are
//! returned to the caller, which folds them in Rust and writes them back with [`COMPACT`].

use std::sync::LazyLock;

use redis::Script;

/// What both apply scripts share: the blobs.
///
/// A blob is a table `{ key, must_key, must, ttl, limit, rewrite }` (`ttl` in ms, a string, or nil
/// to keep the key's). `append` adds a record and reports false when the blob may not be created
/// (its session's attributes are gone); a blob created by an event takes its session's TTL (an
/// ended session's stats expire with it). A `rewrite` blob (a user's activity: many keys, few
/// events each) gathers its records and is rewritten once at `finish` (`GET`, `SET`): `APPEND`
/// would leave each of millions of keys with up to twice its size allocated. `finish` sets the
/// TTLs and returns the blobs this call grew past their compaction size (or that are four times
/// past it: a compaction that failed), so that concurrent calls do not compact one blob again and
/// again.
const PRELUDE: &str = r#"
local function append(b, record)
  if b.gone then return false end
  if b.rewrite then
    b.parts = b.parts or {}
    b.parts[#b.parts + 1] = record
    return true
  end
  local n = redis.call('APPEND', b.key, record)
  if n == #record and b.must then
    local ttl = redis.call('PTTL', b.must_key)
    if ttl == -2 then
      redis.call('DEL', b.key)
      b.gone = true
      return false
    end
    if ttl > 0 then redis.call('PEXPIRE', b.key, ttl) end
  end
  if not b.before then b.before = n - #record end
  b.len = n
  return true
end
local function finish(blobs)
  local big = {}
  for i, b in ipairs(blobs) do
    local bytes
    if b.parts then
      local cur = redis.call('GET', b.key) or ''
      bytes = cur .. table.concat(b.parts)
      if b.ttl then
        redis.call('SET', b.key, bytes, 'PX', b.ttl)
      else
        redis.call('SET', b.key, bytes, 'KEEPTTL')
      end
      b.before, b.len = #cur, #bytes
    elseif b.len and b.ttl then
      redis.call('PEXPIRE', b.key, b.ttl)
    end
    if b.len and ((b.before <= b.limit and b.len > b.limit) or b.len > 4 * b.limit) then
      big[#big + 1] = i
      big[#big + 1] = bytes or redis.call('GET', b.key)
    end
  end
  return big
end
"#;

/// De-duplication on standalone Redis: event ids live in sets, one per time bucket of half the
/// de-duplication window. KEYS[1] is the bucket ids are added to; KEYS[1..4] are all checked (the
/// current bucket, the two before it, and the next one, for replicas whose clocks run behind);
/// KEYS[5], the bucket before those, is unlinked (freed off Redis's main thread: a bucket holds
/// half a window of events). An id is thus remembered for at least the window.
const DEDUP: &str = r#"
local function slices(list, f)
  for i = 1, #list, 1000 do f({ unpack(list, i, math.min(i + 999, #list)) }) end
end
local function seen_before(ids)
  local seen = {}
  if #ids == 0 then return seen end
  for k = 1, 4 do
    local j = 0
    slices(ids, function(part)
      for _, x in ipairs(redis.call('SMISMEMBER', KEYS[k], unpack(part))) do
        j = j + 1
        if x == 1 then seen[ids[j]] = true end
      end
    end)
  end
  return seen
end
local function remember(ids, expire_at)
  slices(ids, function(part) redis.call('SADD', KEYS[1], unpack(part)) end)
  if #ids > 0 then redis.call('PEXPIREAT', KEYS[1], expire_at) end
  redis.call('UNLINK', KEYS[5])
end
"#;

/// Applies a chunk of a batch's events to their sessions' stats and users' activity on standalone
/// Redis, each event once, to both blobs or to neither.
///
/// KEYS: 1..5 the de-duplication buckets (see [`DEDUP`]); then per session: its stats and its
/// attributes (which must exist for the stats to be created); then per user: its activity.
/// ARGV: 1 = the current bucket's expiry (ms since the epoch), 2 = number of sessions S,
/// 3 = number of users U, 4 = stats' compaction size (bytes), 5 = activity's TTL (ms),
/// 6 = activity's compaction size, 7 = per event its session's and its user's numbers (1-based,
/// u16 little-endian each); then per event: its id, the session record, the user record. (Few strings per event: Lua interns and collects each one.)
/// Returns `{ codes, big }`: one code per event (1 applied now, 0 applied before, -1 the session's
/// attributes are missing: nothing applied), and for each blob past its compaction size its
/// number (sessions first, then users) and its bytes.
pub static APPLY_EVENTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PRELUDE}{DEDUP}{}",
        r#"
local expire_at = ARGV[1]
local S, U, slimit, ttl, ulimit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local blobs = {}
for i = 1, S do blobs[i] = { key = KEYS[4 + 2 * i], must_key = KEYS[5 + 2 * i], must = true, limit = slimit } end
for i = 1, U do blobs[S + i] = { key = KEYS[5 + 2 * S + i], ttl = ttl, limit = ulimit, rewrite = true } end
local index, byte = ARGV[7], string.byte
local n = (#ARGV - 7) / 3
local ids = {}
for e = 1, n do ids[e] = ARGV[5 + 3 * e] end
local seen = seen_before(ids)
local out, fresh = {}, {}
for e = 1, n do
  local id = ids[e]
  local code = 0
  if not seen[id] then
    local p = 4 * e - 3
    local s, u = byte(index, p) + 256 * byte(index, p + 1), byte(index, p + 2) + 256 * byte(index, p + 3)
    if append(blobs[s], ARGV[6 + 3 * e]) then
      append(blobs[S + u], ARGV[7 + 3 * e])
      seen[id] = true
      fresh[#fresh + 1] = id
      code = 1
    else
      code = -1
    end
  end
  out[e] = code
end
remember(fresh, expire_at)
return { out, finish(blobs) }
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
/// 3 = must-exist flag, 4 = compaction size, 5 = rewrite flag (see [`PRELUDE`]), then one record
/// per event.
/// Returns `{ codes, big }` as [`APPLY_EVENTS`] does (the blob's number is 1).
pub static APPLY_GROUP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PRELUDE}{}",
        r#"
local blob = { key = KEYS[1], must_key = KEYS[2], ttl = ARGV[2] ~= '0' and ARGV[2] or nil, must = ARGV[3] == '1',
               limit = tonumber(ARGV[4]), rewrite = ARGV[5] == '1' }
local out = {}
for e = 1, #KEYS - 2 do
  local code = 0
  if blob.gone then
    code = -1
  elseif redis.call('SET', KEYS[2 + e], '1', 'NX', 'PX', ARGV[1]) then
    if append(blob, ARGV[5 + e]) then
      code = 1
    else
      redis.call('DEL', KEYS[2 + e])
      code = -1
    end
  end
  out[e] = code
end
return { out, finish({ blob }) }
"#
    ))
});

/// Replaces the start of a blob that a caller read and folded (`codec::Kind::compacted`) with
/// the folded state, keeping whatever was appended since and the key's TTL; does nothing when the
/// start is no longer what was read (another replica compacted it first, or it expired).
///
/// KEYS: 1 = the blob. ARGV: 1 = the bytes read, 2 = the state that replaces them.
/// Returns 1 when replaced, 0 otherwise.
pub static COMPACT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = #ARGV[1]
if redis.call('GETRANGE', KEYS[1], 0, n - 1) ~= ARGV[1] then return 0 end
local rest = redis.call('GETRANGE', KEYS[1], n, -1)
redis.call('SET', KEYS[1], ARGV[2] .. rest, 'KEEPTTL')
return 1
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
