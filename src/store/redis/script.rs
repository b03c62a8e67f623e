//! The Lua scripts Redis runs. On a cluster each call touches keys of one hash tag only, so it
//! runs atomically on one node; on standalone Redis [`APPLY_EVENTS`] applies a chunk of a batch
//! across sessions and users in one call.

use std::sync::LazyLock;

use redis::Script;

/// The Lua both apply scripts share: reading the layouts from ARGV, and loading, changing and
/// storing a blob.
///
/// A blob is plain counters, a reference time `ref`, decayed counters *as of `ref`*, and the
/// latest event time. An event at time t adds amount · 2^((t − ref) / half-life) to a decayed
/// counter, so applying it touches only the values it changes: `store` splices them into the
/// stored bytes instead of unpacking, decaying and repacking the whole blob. When t runs more than
/// `REBASE` shortest half-lives past `ref` (so that those factors stay far from overflow), the
/// blob is decayed to t in full and t becomes `ref`. Readers (`codec`) decay the counters from
/// `ref` to the latest event time: the same values as `Decayed::add` folding the events in order.
/// A blob of the layout before the latest time was kept (its `ref` was the latest event's) is
/// read as one whose latest time is its `ref`.
///
/// ARGV from 2: number of layouts L, then per layout: plain, counters, k, k half-lives (ms).
/// Deltas are `codec::sparse_delta`s: packed f64s, the event's time, then (1-based index, amount)
/// pairs.
pub(super) const PRELUDE: &str = r#"
local REBASE = 32
local layouts = {}
local a = 3
for l = 1, tonumber(ARGV[2]) do
  local lay = { plain = tonumber(ARGV[a]), counters = tonumber(ARGV[a + 1]), k = tonumber(ARGV[a + 2]), hl = {} }
  a = a + 3
  lay.hlmin = math.huge
  for w = 1, lay.k do
    lay.hl[w] = tonumber(ARGV[a]); a = a + 1
    if lay.hl[w] < lay.hlmin then lay.hlmin = lay.hl[w] end
  end
  lay.at = lay.plain + 1
  lay.n = lay.plain + 2 + lay.counters * lay.k
  lay.fmt = '<' .. string.rep('d', lay.n)
  layouts[l] = lay
end
local fmts = {}
local function values(s)
  local m = #s / 8
  local f = fmts[m]
  if not f then f = '<' .. string.rep('d', m); fmts[m] = f end
  local v = { struct.unpack(f, s) }
  v[m + 1] = nil
  return v, m
end
local function load(key, lay, ttl_ms)
  local b = { key = key, lay = lay, ttl_ms = ttl_ms, acc = {}, changed = false }
  local cur = redis.call('GET', key)
  if cur and #cur == 8 * (lay.n - 1) then
    cur = cur .. string.sub(cur, 8 * lay.at - 7, 8 * lay.at)
  elseif cur and #cur ~= 8 * lay.n then
    cur = false
  end
  if cur then
    b.cur = cur
    b.ref = struct.unpack('<d', cur, 8 * lay.at - 7)
    b.latest = struct.unpack('<d', cur, 8 * lay.n - 7)
  end
  return b
end
local function decay(lay, v, to)
  for w = 1, lay.k do
    local f = 2 ^ (-(to - v[lay.at]) / lay.hl[w])
    for j = lay.at + w, lay.n - 1, lay.k do v[j] = v[j] * f end
  end
  v[lay.at] = to
end
local function apply(b, delta)
  local lay = b.lay
  local d, len = values(delta)
  local t = d[1]
  if not b.dense and (not b.cur or (t - b.ref) / lay.hlmin > REBASE) then
    local dense
    if b.cur then
      dense = values(b.cur)
    else
      dense = {}
      for j = 1, lay.n do dense[j] = 0 end
      dense[lay.at] = t
      b.latest = t
    end
    for j, x in pairs(b.acc) do dense[j] = dense[j] + x end
    b.dense = dense
    b.ref = dense[lay.at]
  end
  if b.dense and (t - b.ref) / lay.hlmin > REBASE then decay(lay, b.dense, t); b.ref = t end
  if t > b.latest then b.latest = t end
  local dense, acc, ref, at, k, hl = b.dense, b.acc, b.ref, lay.at, lay.k, lay.hl
  for i = 2, len - 1, 2 do
    local j, x = d[i], d[i + 1]
    if j > at then x = x * 2 ^ ((t - ref) / hl[(j - at - 1) % k + 1]) end
    if dense then dense[j] = dense[j] + x else acc[j] = (acc[j] or 0) + x end
  end
  b.changed = true
end
local function store(b)
  if not b.changed then return end
  local lay, blob = b.lay, nil
  if b.dense then
    b.dense[lay.n] = b.latest
    blob = struct.pack(lay.fmt, unpack(b.dense))
  else
    local acc, cur = b.acc, b.cur
    acc[lay.n] = b.latest
    local idx = {}
    for j in pairs(acc) do idx[#idx + 1] = j end
    table.sort(idx)
    local parts, pos = {}, 1
    for _, j in ipairs(idx) do
      local off = 8 * j - 7
      parts[#parts + 1] = string.sub(cur, pos, off - 1)
      local x = acc[j]
      if j ~= lay.n then x = x + struct.unpack('<d', cur, off) end
      parts[#parts + 1] = struct.pack('<d', x)
      pos = off + 8
    end
    parts[#parts + 1] = string.sub(cur, pos)
    blob = table.concat(parts)
  end
  if b.ttl_ms > 0 then
    redis.call('SET', b.key, blob, 'PX', b.ttl_ms)
  else
    redis.call('SET', b.key, blob, 'KEEPTTL')
  end
end
"#;

/// Applies a batch's events to their sessions' stats and users' activity on standalone Redis,
/// each event once, to both blobs or to neither: one call for a chunk of a batch (one round trip,
/// one script run), one de-duplication marker per event.
///
/// KEYS: per blob: the blob, and the key that must exist for events to apply (a session's
/// attributes; the blob itself for a user); then one marker per event (the session's marker key
/// of the event id).
/// ARGV: 1 = dedup ttl (ms), the layouts (see [`PRELUDE`]), number of blobs B, then per blob:
/// layout number (1-based), blob ttl (ms, 0 = keep the key's TTL), must-exist flag ("1"/"0");
/// then per event: its session's blob number, its user's blob number (1-based), the session
/// delta, the user delta.
/// Returns one integer per event: 1 applied now, 0 applied before (marker present), -1 the
/// session's attributes are missing (nothing applied).
pub static APPLY_EVENTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PRELUDE}{}",
        r#"
local dedup_ms = tonumber(ARGV[1])
local nblobs = tonumber(ARGV[a]); a = a + 1
local spec, blobs = {}, {}
for i = 1, nblobs do
  spec[i] = { layouts[tonumber(ARGV[a])], tonumber(ARGV[a + 1]), ARGV[a + 2] == '1' }
  a = a + 3
end
local function blob(i)
  local b = blobs[i]
  if b == nil then
    local s = spec[i]
    if s[3] and redis.call('EXISTS', KEYS[2 * i]) == 0 then
      b = false
    else
      b = load(KEYS[2 * i - 1], s[1], s[2])
    end
    blobs[i] = b
  end
  return b
end
local out = {}
local e = 0
while a <= #ARGV do
  e = e + 1
  local sb = blob(tonumber(ARGV[a]))
  if not sb then
    out[e] = -1
  elseif redis.call('SET', KEYS[2 * nblobs + e], '1', 'NX', 'PX', dedup_ms) then
    apply(sb, ARGV[a + 2])
    apply(blob(tonumber(ARGV[a + 1])), ARGV[a + 3])
    out[e] = 1
  else
    out[e] = 0
  end
  a = a + 4
end
for _, b in pairs(blobs) do
  if b then store(b) end
end
return out
"#
    ))
});

/// Applies events to one blob on Redis Cluster (whose keys, sharing a hash tag, are on one
/// node), each event once per blob: a session's and a user's blob are on different nodes, so
/// each keeps its own markers.
///
/// KEYS: 1 = blob, 2 = key that must exist (the session's attributes; checked when ARGV says so),
/// 3.. = one de-duplication marker per event.
/// ARGV: 1 = dedup ttl (ms), the layouts (see [`PRELUDE`]), layout number (1-based), blob ttl
/// (ms, 0 = keep the key's TTL), must-exist flag ("1"/"0"), then one delta per event.
/// Returns one integer per event: 1 applied now, 0 applied before (marker present), -1 the
/// must-exist key is missing (nothing applied).
pub static APPLY_GROUP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PRELUDE}{}",
        r#"
local dedup_ms = tonumber(ARGV[1])
local lay, ttl_ms, must = layouts[tonumber(ARGV[a])], tonumber(ARGV[a + 1]), ARGV[a + 2] == '1'
a = a + 3
local out = {}
local events = #KEYS - 2
if must and redis.call('EXISTS', KEYS[2]) == 0 then
  for e = 1, events do out[e] = -1 end
  return out
end
local b = load(KEYS[1], lay, ttl_ms)
for e = 1, events do
  if redis.call('SET', KEYS[2 + e], '1', 'NX', 'PX', dedup_ms) then
    apply(b, ARGV[a + e - 1])
    out[e] = 1
  else
    out[e] = 0
  end
end
store(b)
return out
"#
    ))
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
