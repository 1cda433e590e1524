"""The Lua scripts the cache runs in Redis (kept in Python so packaging cannot lose them).

Scripts run atomically: a reading's dedupe bit and every aggregate it feeds
change together or not at all. They touch keys they derive from their input
(a single Redis primary; not Redis Cluster). Numbers are written with the same
formatting as `ess_cache_layout.aggregate`, so a rebuild produces identical values.
"""

from __future__ import annotations

_COMMON = r"""
local function num(x)
  local s = string.format('%.15g', x)
  if tonumber(s) == x then return s end
  s = string.format('%.16g', x)
  if tonumber(s) == x then return s end
  return string.format('%.17g', x)
end

-- a = [n, sum_q, min, max, first, first_slot, last, last_slot]
local function merge(a, o)
  a[1] = a[1] + o[1]
  a[2] = a[2] + o[2]
  if o[3] < a[3] then a[3] = o[3] end
  if o[4] > a[4] then a[4] = o[4] end
  if o[6] < a[6] or (o[6] == a[6] and o[5] < a[5]) then a[5] = o[5]; a[6] = o[6] end
  if o[8] > a[8] or (o[8] == a[8] and o[7] > a[7]) then a[7] = o[7]; a[8] = o[8] end
end
"""

# ARGV[1] key prefix, ARGV[2] header JSON, ARGV[3] readings (binary), ARGV[4..] latest
# payloads; layouts in ess_cache.plan. Returns JSON {"status": 0, "generation": marker
# generation, "applied": {table: n}, "duplicates": {table: n}, "raised": {rule: n}}, or
# {"status": -1} when the marker is gone (Redis was flushed or restarted): nothing applied.
APPLY_BATCH = (
    _COMMON
    + r"""
local P = ARGV[1]
local generation = redis.call('HGET', P .. ':meta:marker', 'generation')
if not generation then return '{"status":-1}' end
local h = cjson.decode(ARGV[2])
local now, res, devs = h.now, h.res, h.dev
local base = res[1][2]
local anomalies = {}
for _, an in ipairs(h.an) do
  local list = anomalies[an[1]]
  if list == nil then list = {}; anomalies[an[1]] = list end
  list[#list + 1] = an
end
local READING = '<HI4' .. string.rep('d', 2 * h.width)
local fmts = {}
local function fmt(k)
  local f = fmts[k]
  if f == nil then f = '<B' .. string.rep('d', 8 * k); fmts[k] = f end
  return f
end

-- 1. Dedupe each reading on its device's day bitmap; fold new ones per device and minute.
local parts, order, seen_keys = {}, {}, {}
local applied, dups, raised = {}, {}, {}
local blob, pos = ARGV[3], 1
for i = 1, h.count do
  local r = {struct.unpack(READING, blob, pos)}
  pos = r[#r]
  local di, slot = r[1], r[2]
  local d = devs[di]
  local day = slot - slot % 86400
  local by_day = seen_keys[di]
  if by_day == nil then by_day = {}; seen_keys[di] = by_day end
  local seen = by_day[day]
  local first_use = seen == nil
  if first_use then
    seen = P .. ':seen:' .. d[1] .. ':' .. day
    by_day[day] = seen
  end
  local was_set = redis.call('SETBIT', seen, slot - day, 1)
  if first_use then redis.call('EXPIREAT', seen, day + h.seen_tail) end
  if was_set == 0 then
    applied[d[5]] = (applied[d[5]] or 0) + 1
    local start = slot - slot % base
    local by_start = parts[di]
    if by_start == nil then by_start = {}; parts[di] = by_start end
    local m = by_start[start]
    if m == nil then
      m = {}
      by_start[start] = m
      order[#order + 1] = {di, start, m}
    end
    for j = 1, d[4] do
      local v = r[2 * j + 1]
      if v == v then  -- NaN marks a missing value
        local q = r[2 * j + 2]
        local a = m[j]
        if a == nil then
          m[j] = {1, q, v, v, v, slot, v, slot}
        else
          a[1] = a[1] + 1
          a[2] = a[2] + q
          if v < a[3] then a[3] = v end
          if v > a[4] then a[4] = v end
          if slot < a[6] or (slot == a[6] and v < a[5]) then a[5] = v; a[6] = slot end
          if slot > a[8] or (slot == a[8] and v > a[7]) then a[7] = v; a[8] = slot end
        end
      end
    end
    local found = anomalies[i]
    if found then
      local feed = P .. ':anomalies:' .. d[2]
      for _, an in ipairs(found) do
        redis.call('XADD', feed, 'MAXLEN', '~', h.cap, '*', 'device', d[1], 'slot', slot,
          'rule', an[2], 'value', num(an[3]), 'limit', num(an[4]))
        raised[an[2]] = (raised[an[2]] or 0) + 1
      end
    end
  else
    dups[d[5]] = (dups[d[5]] or 0) + 1
  end
end

-- 2. Merge the partials into one per bucket of each series (device, bank, site) and resolution.
local out, out_order, texts = {}, {}, {}
for ri, rs in ipairs(res) do out[ri] = {} end
for _, p in ipairs(order) do
  local d = devs[p[1]]
  for ri, rs in ipairs(res) do
    local width = rs[2]
    local bucket = p[2] - p[2] % width
    local expires = bucket + width + rs[3]
    if expires > now then
      for _, series in ipairs(d[3]) do
        local by_bucket = out[ri][series]
        if by_bucket == nil then by_bucket = {}; out[ri][series] = by_bucket end
        local o = by_bucket[bucket]
        if o == nil then
          local text = texts[bucket]
          if text == nil then text = string.format('%d', bucket); texts[bucket] = text end
          o = {P .. ':agg:' .. rs[1] .. ':' .. series .. ':' .. text, expires, d[4], {}}
          by_bucket[bucket] = o
          out_order[#out_order + 1] = o
        end
        local m = o[4]
        for j, a in pairs(p[3]) do
          local t = m[j]
          if t == nil then
            m[j] = {a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]}
          else
            merge(t, a)
          end
        end
      end
    end
  end
end

-- 3. Merge each into the stored bucket: version byte, then 8 doubles per measurement
--    (n, sum_q, min, max, first, first_slot, last, last_slot; n = 0: no value yet).
for _, o in ipairs(out_order) do
  local k, m = o[3], o[4]
  local old = redis.call('GET', o[1])
  local flat
  if old then
    flat = {struct.unpack(fmt(k), old)}
    flat[#flat] = nil
  else
    flat = {1}
    for i = 2, 1 + 8 * k do flat[i] = 0 end
  end
  for j, a in pairs(m) do
    local at = 1 + 8 * (j - 1)
    if flat[at + 1] == 0 then
      for i = 1, 8 do flat[at + i] = a[i] end
    else
      flat[at + 1] = flat[at + 1] + a[1]
      flat[at + 2] = flat[at + 2] + a[2]
      if a[3] < flat[at + 3] then flat[at + 3] = a[3] end
      if a[4] > flat[at + 4] then flat[at + 4] = a[4] end
      if a[6] < flat[at + 6] or (a[6] == flat[at + 6] and a[5] < flat[at + 5]) then
        flat[at + 5] = a[5]; flat[at + 6] = a[6]
      end
      if a[8] > flat[at + 8] or (a[8] == flat[at + 8] and a[7] > flat[at + 7]) then
        flat[at + 7] = a[7]; flat[at + 8] = a[8]
      end
    end
  end
  redis.call('SET', o[1], struct.pack(fmt(k), unpack(flat)), 'EXAT', o[2])
end

-- 4. Latest reading per device (only if newer), and the site's device index.
local sites = {}
for _, l in ipairs(h.lat) do
  local d = devs[l[1]]
  if redis.call('ZADD', P .. ':devices:' .. d[2], 'GT', 'CH', l[2], d[1]) == 1 then
    redis.call('SET', P .. ':latest:' .. d[1], ARGV[l[3]], 'EX', h.lat_ttl)
  end
  if not sites[d[2]] then
    sites[d[2]] = true
    redis.call('SADD', P .. ':sites', d[2])
  end
end

return cjson.encode({status = 0, generation = generation, applied = applied,
  duplicates = dups, raised = raised})
"""
)

# ARGV: prefix, site, now, stale_after_s, max_entries, max_age_s.
# Flags devices of a site silent for longer than stale_after_s (once per episode),
# clears the flag of those reporting again, and trims the feed by age.
# Returns the number of stale anomalies raised, or -1 when the marker is gone.
FLAG_STALE = (
    _COMMON
    + r"""
local P, site = ARGV[1], ARGV[2]
local now, after, cap, max_age = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
if redis.call('EXISTS', P .. ':meta:marker') == 0 then return -1 end
local z, flagged = P .. ':devices:' .. site, P .. ':stale:' .. site
local feed = P .. ':anomalies:' .. site
local cutoff = now - after
local raised = 0
local silent = redis.call('ZRANGE', z, '-inf', '(' .. cutoff, 'BYSCORE', 'WITHSCORES')
for i = 1, #silent, 2 do
  local device, last = silent[i], tonumber(silent[i + 1])
  if redis.call('SADD', flagged, device) == 1 then
    redis.call('XADD', feed, 'MAXLEN', '~', cap, '*', 'device', device, 'slot', last,
      'rule', 'device_stale', 'value', num(now - last), 'limit', num(after))
    raised = raised + 1
  end
end
for _, device in ipairs(redis.call('SMEMBERS', flagged)) do
  local last = redis.call('ZSCORE', z, device)
  if not last or tonumber(last) >= cutoff then redis.call('SREM', flagged, device) end
end
redis.call('XTRIM', feed, 'MINID', '~', (now - max_age) * 1000)
return raised
"""
)

# KEYS[1] rebuild lock, KEYS[2] marker; ARGV[1] lock token, ARGV[2..] marker fields.
# Sets the marker only if the lock is still ours: a flush during the rebuild
# removed the lock too, and the rebuild must then start again.
FINISH_REBUILD = r"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS[1] rebuild lock; ARGV[1] token, ARGV[2] ttl ms. 1 if the lock is still ours.
EXTEND_LOCK = r"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS[1] rebuild lock; ARGV[1] token. Deletes the lock only if it is ours.
RELEASE_LOCK = r"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""
