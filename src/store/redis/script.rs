//! The Lua scripts Redis runs. Each touches keys of one hash tag only, so it runs atomically on
//! one node of a cluster.

use std::sync::LazyLock;

use redis::Script;

/// Applies events to one blob (a session's stats or a user's activity), each event once.
///
/// KEYS: 1 = blob, 2 = key that must exist (the session's attributes; checked when ARGV says so),
/// 3.. = one de-duplication marker per event.
/// ARGV: plain, counters, k, k half-lives (ms), dedup ttl (ms), blob ttl (ms, 0 = keep the key's
/// TTL), must-exist flag ("1"/"0"), then one packed delta per event (the layout of `codec`).
/// Returns one integer per event: 1 applied now, 0 applied before (marker present), -1 the
/// must-exist key is missing (nothing applied).
///
/// The decayed part is `Decayed::add` in Lua: move the reference time forward (decaying every
/// counter) when the event is newer, then add the event's amounts decayed from its own time.
pub static APPLY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local plain = tonumber(ARGV[1])
local counters = tonumber(ARGV[2])
local k = tonumber(ARGV[3])
local hl = {}
for w = 1, k do hl[w] = tonumber(ARGV[3 + w]) end
local dedup_ms = tonumber(ARGV[4 + k])
local blob_ms = tonumber(ARGV[5 + k])
local must_exist = ARGV[6 + k] == '1'
local first = 7 + k
local events = #KEYS - 2
local out = {}
if must_exist and redis.call('EXISTS', KEYS[2]) == 0 then
  for e = 1, events do out[e] = -1 end
  return out
end
local n = plain + 1 + counters * k
local fmt = '<' .. string.rep('d', n)
local v
local cur = redis.call('GET', KEYS[1])
if cur and #cur == 8 * n then
  v = { struct.unpack(fmt, cur) }
  v[n + 1] = nil
else
  v = {}
  for j = 1, n do v[j] = 0 end
end
local at = plain + 1
local changed = false
for e = 1, events do
  if redis.call('SET', KEYS[2 + e], '1', 'NX', 'PX', dedup_ms) then
    local d = { struct.unpack(fmt, ARGV[first + e - 1]) }
    for j = 1, plain do v[j] = v[j] + d[j] end
    local t = d[at]
    if t > v[at] then
      for w = 1, k do
        local f = 2 ^ (-(t - v[at]) / hl[w])
        for c = 0, counters - 1 do
          local j = at + 1 + c * k + (w - 1)
          v[j] = v[j] * f
        end
      end
      v[at] = t
    end
    for w = 1, k do
      local g = 2 ^ (-(v[at] - t) / hl[w])
      for c = 0, counters - 1 do
        local j = at + 1 + c * k + (w - 1)
        v[j] = v[j] + d[j] * g
      end
    end
    out[e] = 1
    changed = true
  else
    out[e] = 0
  end
end
if changed then
  local blob = struct.pack(fmt, unpack(v))
  if blob_ms > 0 then
    redis.call('SET', KEYS[1], blob, 'PX', blob_ms)
  else
    redis.call('SET', KEYS[1], blob, 'KEEPTTL')
  end
end
return out
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
