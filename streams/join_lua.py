"""The Lua side of the label join (:mod:`streams.join`): one script per (model, batch).

All keys of a model share the hash tag ``{P:<model>}`` (the alert keys' tag, so the
evaluator's fenced writes and the join touch one Redis Cluster slot); the scripts build
the keys of the model's slices from ``base`` (``P:perf:{P:<model>}``)::

    base:meta          hash: hw:p:<partition> / hw:l:<partition> (highest offset applied
                       per topic partition), clock (largest prediction time, ms),
                       pending, early, and the counters (orphan, expired, duplicate,
                       duplicate_prediction, late, forgotten, evicted, joined)
    base:slices        zset of live slice numbers (slice = ts // slice_ms)
    base:sb            hash: slice -> its number of buckets, set when the slice is made
                       from what waits then and the newest slice's entries (n:<slice>),
                       so small models keep few keys and busy ones small buckets; and
                       what waits in each slice (p:<slice> predictions, e:<slice> labels)
    base:j:<s>:<b>     hash: hashed id (8 bytes) -> entry, in bucket b of slice s, with a
                       wall-clock TTL (the *idle backstop*, below):
                         "P<pred ts ms>;<versions>;<score or number>;<class>": waiting
                         (versions: the version, then its segments' version names)
                         "L<label ts ms>;<label>": a label whose prediction has not come
                         "D"  joined (kept to recognise duplicates until the slice expires)
                         "F"  forgotten (driftline forget): later labels are dropped
    base:w:<version>|<window start>   hash: the window's aggregates (sketches.performance)
    base:versions      set of versions with aggregates
    base:classes       set of class names seen (bounded; further ones count as "~other")
    base:o             stream of joined outcomes: v=<version> e=<error> (0/1 or |error|)
                       n=<its number: the ``joined`` counter after it> (capped at
                       ``maxlen``, approximately; the detectors count the gaps in ``n``)

Exactly-once: each record's effect is applied at most once per model because the script
skips records at or below the partition's ``hw`` and sets ``hw`` in the same atomic call;
records are applied in offset order. A worker that dies after the call but before its
Kafka commit / window checkpoint replays the records, and the replay changes nothing.

Idle backstop: ``label_ttl`` runs on the model's event time, which stands still when the
model stops sending; so every write to a bucket also sets its TTL to ``label_ttl`` + one
slice + :data:`IDLE_MARGIN_MS` of wall clock. While the model sends, its slices are dropped
by event time first: with event time keeping up, a bucket's first write is no earlier than
its slice's start, so even without the margin its TTL reaches the slice's end + label_ttl;
the margin covers event time falling behind (an outage, a backlog). A retired model's
hashed ids are gone that long after its last write. What Redis
drops this way is found when the expiry reaches the slice (the slice's p: / e: counts
minus what is left) and counted ``idle_expired`` (and ``expired`` / ``orphan``), so the
``pending`` / ``early`` counters stay true. The TTL is a key's lifetime, never a record's
effect: the ``hw`` offsets and counters live in ``meta`` (no TTL), so exactly-once holds.
"""

from __future__ import annotations

from typing import Final

SLICES: Final = 8
"""A model's label TTL is cut in this many time slices; expiry drops whole slices."""
TARGET_PER_BUCKET: Final = 100
"""Entries per bucket hash a new slice aims at (Redis keeps hashes up to 128 entries in
its compact listpack encoding by default)."""
IDLE_MARGIN_MS: Final = 7 * 86_400_000
"""Wall clock a bucket outlives its event-time expiry by (see the module doc): an outage
shorter than this loses no waiting prediction; a longer one loses, and counts, them."""

_TEMPLATE: Final = r"""
local base = ARGV[1]
local meta = base .. ':meta'
local task, pos, neg = ARGV[2], ARGV[3], ARGV[4]
local threshold = tonumber(ARGV[5])
local window_ms, retention_ms = tonumber(ARGV[6]), tonumber(ARGV[7])
local slice_ms, buckets = tonumber(ARGV[8]), tonumber(ARGV[9])
local ttl_ms, wttl_ms = tonumber(ARGV[10]), tonumber(ARGV[11])
local max_classes, maxlen = tonumber(ARGV[12]), tonumber(ARGV[13])
local per_ttl, target = %(slices)d, %(target)d
local idle_ms = ttl_ms + slice_ms + %(margin)d
local LOGG = math.log((1 + 0.01) / (1 - 0.01))

local sizes = {}
local function size_of(slice)  -- buckets of a slice, fixed when the slice is created
  local b = sizes[slice]
  if b == nil then
    b = tonumber(redis.call('HGET', base .. ':sb', slice) or '1')
    sizes[slice] = b
  end
  return b
end

local function bkey(hid, slice)
  local b = (string.byte(hid, 1) * 256 + string.byte(hid, 2)) % size_of(slice)
  return base .. ':j:' .. slice .. ':' .. b
end

local live = nil
local function slices()
  if live == nil then live = redis.call('ZRANGE', base .. ':slices', 0, -1) end
  return live
end

local function find(hid)  -- bucket key, entry, slice
  for _, s in ipairs(slices()) do
    local k = bkey(hid, s)
    local v = redis.call('HGET', k, hid)
    if v then return k, v, s end
  end
  return nil, nil, nil
end

local touched = {}
local function set(k, hid, value)  -- every bucket write: its TTL is set once per call
  touched[k] = true
  return redis.call('HSET', k, hid, value)
end

local function refresh()  -- the idle backstop of the buckets written by this call
  for k in pairs(touched) do redis.call('PEXPIRE', k, idle_ms) end
end

local function waiting(s, what, by)  -- 'pending' / 'early': per model and per slice
  redis.call('HINCRBY', meta, what, by)
  redis.call('HINCRBY', base .. ':sb', string.sub(what, 1, 1) .. ':' .. s, by)
end

local function place(hid, ts, value)
  local s = tostring(math.floor(ts / slice_ms))
  if sizes[s] == nil and redis.call('ZSCORE', base .. ':slices', s) == false then
    -- a new slice: enough buckets for about TARGET entries each (small hashes stay in
    -- Redis's compact encoding), judged from one slice's share of what waits now and
    -- from how many entries the newest slice took
    local waiting = tonumber(redis.call('HGET', meta, 'pending') or '0')
      + tonumber(redis.call('HGET', meta, 'early') or '0')
    local expect = waiting / per_ttl
    local all = slices()
    if #all > 0 then
      local last = tonumber(redis.call('HGET', base .. ':sb', 'n:' .. all[#all]) or '0')
      if last > expect then expect = last end
    end
    local b = math.max(1, math.min(buckets, math.ceil(expect / target)))
    redis.call('HSET', base .. ':sb', s, b)
    redis.call('ZADD', base .. ':slices', tonumber(s), s)
    sizes[s] = b
    live = nil
  end
  local k = bkey(hid, s)
  if set(k, hid, value) == 1 then
    redis.call('HINCRBY', base .. ':sb', 'n:' .. s, 1)
  end
  return k, s
end

local function bucket(x, prefix, zero, tiny)
  if x <= tiny then return zero end
  return prefix .. (math.ceil(math.log(x) / LOGG) + 0)  -- + 0: never "-0"
end

local function cls(c)
  if redis.call('SISMEMBER', base .. ':classes', c) == 1 then return c end
  if redis.call('SCARD', base .. ':classes') < max_classes then
    redis.call('SADD', base .. ':classes', c)
    return c
  end
  return '~other'
end

local function window_of(ver, ts)
  return base .. ':w:' .. ver .. '|' .. (ts - ts % window_ms)
end

local function touch(w, ver)
  redis.call('PEXPIRE', w, wttl_ms)
  redis.call('SADD', base .. ':versions', ver)
end

local function fmt(x) return string.format('%.17g', x) end

local function versions(vers)  -- "7" or "7,7~country=DE,...": the version, its segments
  local out = {}
  for v in string.gmatch(vers, '[^,]+') do out[#out + 1] = v end
  return out
end

local function count(vers, ts, field)  -- one more prediction / expiry in each window
  for _, v in ipairs(versions(vers)) do
    local w = window_of(v, ts)
    redis.call('HINCRBY', w, field, 1)
    touch(w, v)
  end
end

local function complete(vers, pts, pclass, num, label, lts, clock)
  if task == 'r' then  -- checked before any write: a script error would leave half of it
    local e = tonumber(num) - tonumber(label)
    if e ~= e or e * e == math.huge then
      redis.call('HINCRBY', meta, 'unscorable', 1)
      return
    end
  end
  local fields, err = {'n'}, 0
  local floats = {}
  if task == 'r' then
    local e = tonumber(num) - tonumber(label)
    local a = math.abs(e)
    floats = {{'sae', a}, {'sse', e * e}, {'se', e}}
    if a <= 1e-9 then fields[#fields + 1] = 'e0'
    elseif e > 0 then fields[#fields + 1] = bucket(a, 'e+:', 'e0', 1e-9)
    else fields[#fields + 1] = bucket(a, 'e-:', 'e0', 1e-9) end
    err = a
  else
    local pc = pclass
    local lc = cls(label)
    if num ~= '' and task == 'b' then
      local s = tonumber(num)
      if s >= threshold then pc = pos else pc = neg end
      fields[#fields + 1] = 's:' .. lc .. ':' .. (math.min(math.floor(s * 1000), 999) + 0)
    end
    pc = cls(pc)
    fields[#fields + 1] = 'c:' .. pc .. '|' .. lc
    if pc == lc then err = 0 else err = 1 end
  end
  local d = (tonumber(lts) - tonumber(pts)) / 1000
  if d < 0 then d = 0 end
  fields[#fields + 1] = bucket(d, 'd:', 'd0', 1e-3)
  local all = versions(vers)
  for _, v in ipairs(all) do  -- the version's window and its segments' windows
    local w = window_of(v, pts)
    for _, f in ipairs(fields) do redis.call('HINCRBY', w, f, 1) end
    for _, f in ipairs(floats) do redis.call('HINCRBYFLOAT', w, f[1], fmt(f[2])) end
    touch(w, v)
  end
  local n = redis.call('HINCRBY', meta, 'joined', 1)
  redis.call('XADD', base .. ':o', 'MAXLEN', '~', maxlen, '*', 'v', all[1], 'e', err, 'n', n)
  if (pts - pts % window_ms) + window_ms + retention_ms <= clock then
    redis.call('HINCRBY', meta, 'late', 1)
  end
end

local function split(v, n)  -- n ';'-separated parts after the kind; the last keeps any ';'
  local out, pos = {}, 2
  for _ = 1, n - 1 do
    local j = string.find(v, ';', pos, true)
    out[#out + 1] = string.sub(v, pos, j - 1)
    pos = j + 1
  end
  out[#out + 1] = string.sub(v, pos)
  return out
end
"""

_COMMON: Final = _TEMPLATE.replace("%(slices)d", str(SLICES)).replace(
    "%(target)d", str(TARGET_PER_BUCKET)).replace("%(margin)d", str(IDLE_MARGIN_MS))

PUT: Final = _COMMON + r"""
local mode, partition = ARGV[14], ARGV[15]
local hwf = 'hw:' .. mode .. ':' .. partition
local hw = tonumber(redis.call('HGET', meta, hwf) or '-1')
local clock = tonumber(redis.call('HGET', meta, 'clock') or '0')
local applied, i = 0, 17
for _ = 1, tonumber(ARGV[16]) do
  local off, hid, ts = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2])
  local a, b, c, d = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  i = i + 7
  if off > hw then
    hw = off
    applied = applied + 1
    local k, v, ks = find(hid)
    local kind = v and string.sub(v, 1, 1) or ''
    if mode == 'p' then  -- a = version(s), b = class, c = score / number, d = inline label
      if ts > clock then clock = ts end
      if kind == 'F' then
        redis.call('HINCRBY', meta, 'forgotten', 1)
      elseif kind == 'P' or kind == 'D' then
        redis.call('HINCRBY', meta, 'duplicate_prediction', 1)
      elseif d ~= '' then
        count(a, ts, 'p')
        complete(a, ts, b, c, d, ts, clock)
        if kind == 'L' then redis.call('HINCRBY', meta, 'duplicate', 1) end
        if k then set(k, hid, 'D') else place(hid, ts, 'D') end
        if kind == 'L' then waiting(ks, 'early', -1) end
      elseif kind == 'L' then
        count(a, ts, 'p')
        local l = split(v, 2)
        complete(a, ts, b, c, l[2], l[1], clock)
        set(k, hid, 'D')
        waiting(ks, 'early', -1)
        redis.call('HINCRBY', meta, 'joined_early', 1)
      else
        count(a, ts, 'p')
        local _, s = place(hid, ts, 'P' .. ts .. ';' .. a .. ';' .. c .. ';' .. b)
        waiting(s, 'pending', 1)
      end
    else  -- a label: d = label
      if kind == 'P' then
        local p = split(v, 4)
        complete(p[2], tonumber(p[1]), p[4], p[3], d, ts, clock)
        set(k, hid, 'D')
        waiting(ks, 'pending', -1)
      elseif kind == 'D' or kind == 'L' then
        redis.call('HINCRBY', meta, 'duplicate', 1)
      elseif kind == 'F' then
        redis.call('HINCRBY', meta, 'forgotten', 1)
      else
        local _, s = place(hid, ts, 'L' .. ts .. ';' .. d)
        waiting(s, 'early', 1)
        redis.call('HINCRBY', meta, 'early_total', 1)
      end
    end
  end
end
redis.call('HSET', meta, hwf, hw, 'clock', clock)
refresh()
return applied
"""

EXPIRE: Final = _COMMON + r"""
-- expire every slice that ended ttl_ms before the clock; then, while more entries than
-- ARGV[14] (max_pending) wait, the oldest slices too (counted as evicted)
local clock = tonumber(redis.call('HGET', meta, 'clock') or '0')
local max_pending = tonumber(ARGV[14])
local done = 0
local function drop(s, why)
  local found_p, found_e = 0, 0
  for b = 0, size_of(s) - 1 do
    local k = base .. ':j:' .. s .. ':' .. b
    local all = redis.call('HGETALL', k)
    for j = 2, #all, 2 do
      local v = all[j]
      local kind = string.sub(v, 1, 1)
      if kind == 'P' then
        local p = split(v, 4)
        count(p[2], tonumber(p[1]), 'x')
        redis.call('HINCRBY', meta, 'pending', -1)
        redis.call('HINCRBY', meta, 'expired', 1)
        if why == 'evicted' then redis.call('HINCRBY', meta, 'evicted', 1) end
        found_p = found_p + 1
      elseif kind == 'L' then
        redis.call('HINCRBY', meta, 'early', -1)
        redis.call('HINCRBY', meta, 'orphan', 1)
        found_e = found_e + 1
      end
    end
    if #all > 0 then redis.call('DEL', k) end
  end
  -- what the slice held but Redis dropped first (the idle backstop); slices made before
  -- the per-slice counts read 0 or less here and count nothing
  local sb = base .. ':sb'
  local lost_p = tonumber(redis.call('HGET', sb, 'p:' .. s) or '0') - found_p
  local lost_e = tonumber(redis.call('HGET', sb, 'e:' .. s) or '0') - found_e
  if lost_p > 0 then
    redis.call('HINCRBY', meta, 'pending', -lost_p)
    redis.call('HINCRBY', meta, 'expired', lost_p)
    redis.call('HINCRBY', meta, 'idle_expired', lost_p)
  end
  if lost_e > 0 then
    redis.call('HINCRBY', meta, 'early', -lost_e)
    redis.call('HINCRBY', meta, 'orphan', lost_e)
    redis.call('HINCRBY', meta, 'idle_expired', lost_e)
  end
  redis.call('ZREM', base .. ':slices', s)
  redis.call('HDEL', sb, s, 'n:' .. s, 'p:' .. s, 'e:' .. s)
  done = done + 1
end
for _, s in ipairs(slices()) do
  if (tonumber(s) + 1) * slice_ms + ttl_ms <= clock then drop(s, 'expired') end
end
live = nil
for _, s in ipairs(slices()) do
  local waiting = tonumber(redis.call('HGET', meta, 'pending') or '0')
    + tonumber(redis.call('HGET', meta, 'early') or '0')
  if waiting <= max_pending then break end
  drop(s, 'evicted')
end
return done
"""

FORGET: Final = _COMMON + r"""
-- ARGV[14..]: hashed ids; ARGV[14 - 1 + ...]; the marker goes to the newest slice
local now_slice = math.floor(tonumber(redis.call('HGET', meta, 'clock') or '0') / slice_ms)
local erased = 0
for j = 14, #ARGV do
  local hid = ARGV[j]
  local k, v, ks = find(hid)
  local kind = v and string.sub(v, 1, 1) or ''
  if kind == 'P' then waiting(ks, 'pending', -1) end
  if kind == 'L' then waiting(ks, 'early', -1) end
  if kind ~= 'F' then
    if k then redis.call('HDEL', k, hid) end
    local s = now_slice
    local last = slices()[#slices()]
    if last and tonumber(last) > s then s = tonumber(last) end
    place(hid, s * slice_ms, 'F')
    erased = erased + 1
  end
end
refresh()
return erased
"""
