-- Read the prior aggregates of a micro-batch and record its events: one call, atomic.
--
-- The plans, key prefix and lateness allowance are substituted by feature_store/online/redis.py when the
-- script is built. ARGV[1] is the batch: per request a '>BddI4HH' head (plan index, event
-- time in ms, amount, CRC-32 of the counterparty, entity id length, transaction id length)
-- followed by the two ids. The reply is one string of big-endian doubles, len(plan.aggs)
-- per request, NaN for "no value".
--
-- Windows ending at t that need sums, maxima or counterparties keep running state
-- (key 'win'), brought up to date by evicting only the events that left each window since
-- the entity's previous event: O(windows) per event instead of O(events in 30 days). An
-- event older than the state (late), a redelivery, or a lost state takes the slow path:
-- a scan of the log, as the state itself is only a summary of the log.
local plans = __PLANS__
local P = __PREFIX__
local lateness = __LATENESS__
local tunpack = unpack  -- Lua 5.1's table unpack, before the name is taken
local unpack, pack, sub, abs = struct.unpack, struct.pack, string.sub, math.abs
local call, tonumber, NAN = redis.call, tonumber, 0 / 0
local PAGE = 3  -- usually one event leaves a window per event: fetch little
local RUN_PAGE = 16  -- a run of known frauds is walked newest first, this many at a time

-- Neumaier-compensated add: running sums that also subtract stay exact to an ulp or so
local function nadd(s, c, x)
  local t = s + x
  if abs(s) >= abs(x) then c = c + ((s - t) + x) else c = c + ((x - t) + s) end
  return t, c
end

local function entries(logkey, lo, hi)
  local raw = call('ZRANGEBYSCORE', logkey, '(' .. lo, hi)
  local ts, amt, party = {}, {}, {}
  for i = 1, #raw do ts[i], amt[i], party[i] = unpack('>ddI4', raw[i]) end
  return ts, amt, party, #raw
end

-- state: the plan's window signature, T (time of the newest event recorded), then per
-- window 8 doubles. A state built for another plan (another feature set) is no state.
local function load_state(plan, winkey, nw)
  local raw = call('GET', winkey)
  if not raw or #raw ~= 16 + 64 * nw then return nil, nil end
  local v = {unpack(plan.statefmt, raw)}
  if v[1] ~= plan.sig then return nil, nil end
  local st = {}
  for i = 1, nw do
    local b = 2 + 8 * (i - 1)
    local mx, old = v[b + 6], v[b + 7]
    if v[b + 1] == 0 then mx, old = nil, nil end
    st[i] = {cnt = v[b + 1], s = v[b + 2], sc = v[b + 3], q = v[b + 4], qc = v[b + 5],
             mx = mx, old = old, dist = v[b + 8]}
  end
  return st, v[2]
end

local function save_state(plan, winkey, st, T, keep)
  local v = {plan.sig, T}
  for i = 1, #st do
    local w = st[i]
    local n = #v
    v[n + 1], v[n + 2], v[n + 3], v[n + 4], v[n + 5] = w.cnt, w.s, w.sc, w.q, w.qc
    v[n + 6], v[n + 7], v[n + 8] = w.mx or 0, w.old or 0, w.dist
  end
  call('SET', winkey, pack(plan.statefmt, tunpack(v)), 'PX', keep)
end

local function empty_state(nw)
  local st = {}
  for i = 1, nw do st[i] = {cnt = 0, s = 0, sc = 0, q = 0, qc = 0, dist = 0} end
  return st
end

-- add one event to window i; returns the counterparty's count there before it
local function win_add(w, win, i, partykey, ts, a, party)
  if w.cnt == 0 or ts < w.old then w.old = ts end
  w.cnt = w.cnt + 1
  w.s, w.sc = nadd(w.s, w.sc, a)
  w.q, w.qc = nadd(w.q, w.qc, a * a)
  if w.mx == nil or a > w.mx then w.mx = a end
  if win.party then
    local n = call('HINCRBY', partykey, pack('>BI4', i, party), 1)
    if n == 1 then w.dist = w.dist + 1 end
    return n - 1
  end
  return 0
end

local function win_clear(w)
  w.cnt, w.s, w.sc, w.q, w.qc, w.mx, w.old, w.dist = 0, 0, 0, 0, 0, nil, nil, 0
end

-- bring window i from (T - w, T] to (ts - w, ts] (ts >= T): remove what left it
local function win_evict(w, win, i, logkey, partykey, T, ts)
  local cut = ts - win.w
  if w.cnt == 0 or w.old > cut then return end
  local dirty, offset = false, 0
  while true do
    local raw = call('ZRANGEBYSCORE', logkey, '(' .. (T - win.w), '+inf', 'LIMIT', offset, PAGE)
    for k = 1, #raw do
      local e, a, party = unpack('>ddI4', raw[k])
      if e > cut then
        w.old = e
        if dirty then
          local _, amt = entries(logkey, cut, ts)
          local mx = amt[1]
          for j = 2, #amt do if amt[j] > mx then mx = amt[j] end end
          w.mx = mx
        end
        return
      end
      w.cnt = w.cnt - 1
      w.s, w.sc = nadd(w.s, w.sc, -a)
      w.q, w.qc = nadd(w.q, w.qc, -(a * a))
      if a >= w.mx then dirty = true end
      if win.party then
        local field = pack('>BI4', i, party)
        if call('HINCRBY', partykey, field, -1) <= 0 then
          call('HDEL', partykey, field)
          w.dist = w.dist - 1
        end
      end
    end
    if #raw < PAGE then break end
    offset = offset + PAGE
  end
  win_clear(w)  -- everything left the window
end

-- the state as of the newest event in the log, from the log (a lost or missing state)
local function rebuild(plan, logkey, partykey)
  call('DEL', partykey)
  local st = empty_state(#plan.wins)
  local newest = call('ZRANGE', logkey, -1, -1, 'WITHSCORES')
  if #newest == 0 then return st, nil end
  local T = tonumber(newest[2])
  local ets, eamt, eparty, n = entries(logkey, T - plan.wins[#plan.wins].w, T)
  for k = 1, n do
    for i, win in ipairs(plan.wins) do
      if ets[k] > T - win.w then win_add(st[i], win, i, partykey, ets[k], eamt[k], eparty[k]) end
    end
  end
  return st, T
end

-- an aggregate over scanned entries with time in (lo, hi]
local function scanned(kind, lo, hi, ets, eamt, eparty, n, party)
  local v, s, c, found = 0, 0, 0, false
  local parties = {}
  for k = 1, n do
    local e = ets[k]
    if e > lo and e <= hi then
      local a = eamt[k]
      if kind == 'sum' then s, c = nadd(s, c, a)
      elseif kind == 'sumsq' then s, c = nadd(s, c, a * a)
      elseif kind == 'max' then if not found or a > v then v = a end
      elseif kind == 'last_ts' then if not found or e > v then v = e end
      elseif kind == 'distinct' then
        if not parties[eparty[k]] then parties[eparty[k]] = true v = v + 1 end
      elseif kind == 'seen' then if eparty[k] == party then v = 1 end
      end
      found = true
    end
  end
  if kind == 'sum' or kind == 'sumsq' then return s + c end
  if (kind == 'max' or kind == 'last_ts') and not found then return nil end
  return v
end

-- frauds known at ts in (lo, hi]: how many, or the sum of their amounts
local function fraud_sum(kind, frauds, lo, hi, ts)
  local v, c = 0, 0
  for _, f in pairs(frauds) do
    if f[1] > lo and f[1] <= hi and f[2] <= ts then
      if kind == 'fraud' then v = v + 1 else v, c = nadd(v, c, f[3]) end
    end
  end
  return v + c
end

-- the latest run of frauds known at ts in (lo, hi]: its length and its first event's
-- time. It begins after the newest event that is not one, and after every event at that
-- event's time, so the order of simultaneous events never matters.
local function fraud_run(logkey, frauds, lo, hi, ts)
  local cut, times, offset, ended = lo, {}, 0, false
  while not ended do
    local raw = call('ZREVRANGEBYSCORE', logkey, hi, '(' .. lo, 'LIMIT', offset, RUN_PAGE)
    for k = 1, #raw do
      local e = unpack('>d', raw[k])
      local f = frauds[sub(raw[k], 21)]
      if f == nil or f[2] > ts then
        cut, ended = e, true
        break
      end
      times[#times + 1] = e
    end
    ended = ended or #raw < RUN_PAGE
    offset = offset + RUN_PAGE
  end
  local n, first = 0, nil
  for k = 1, #times do
    if times[k] > cut then n, first = n + 1, times[k] end
  end
  return n, first
end

-- transaction id -> {time, label time, amount}; frauds older than ``oldest`` are dropped
local function load_frauds(fraudkey, oldest)
  local raw = call('HGETALL', fraudkey)
  local frauds = {}
  for k = 1, #raw, 2 do
    local v = raw[k + 1]
    local p = string.find(v, '|', 1, true)
    local q = string.find(v, '|', p + 1, true)
    local fts = tonumber(sub(v, 1, p - 1))
    if fts < oldest then
      call('HDEL', fraudkey, raw[k])
    else
      frauds[raw[k]] = {fts, tonumber(sub(v, p + 1, q - 1)), tonumber(sub(v, q + 1))}
    end
  end
  return frauds
end

local function one(plan, eid, txid, ts, amt, party)
  local id = plan.entity .. ':' .. eid
  local logkey, winkey, partykey = P .. 'log:' .. id, P .. 'win:' .. id, P .. 'party:' .. id
  local fraudkey = P .. 'frauds:' .. id
  local member = pack('>ddI4', ts, amt, party) .. txid
  local keep = plan.horizon + lateness
  local nw = #plan.wins
  local st, T = nil, nil
  if nw > 0 then st, T = load_state(plan, winkey, nw) end
  -- a redelivery must not see itself; past the state's newest event it cannot be one
  local dup = false
  if st == nil or T == nil or ts <= T then dup = call('ZREM', logkey, member) == 1 end
  local fresh = nw > 0 and st == nil and call('EXISTS', logkey) == 0
  if fresh then st = empty_state(nw) end
  -- incremental only for an in-order, first delivery with a state in hand
  local fast = nw > 0 and not dup and st ~= nil and (T == nil or ts >= T)
  if fast and T ~= nil then
    for i, win in ipairs(plan.wins) do win_evict(st[i], win, i, logkey, partykey, T, ts) end
  end
  call('ZREMRANGEBYSCORE', logkey, '-inf', '(' .. (ts - keep))
  local ets, eamt, eparty, n = {}, {}, {}, 0
  if not fast and plan.scan > 0 then
    ets, eamt, eparty, n = entries(logkey, ts - plan.scan, ts)
  elseif plan.dscan then
    ets, eamt, eparty, n = entries(logkey, ts - plan.dscan[1], ts - plan.dscan[2])
  end
  local frauds = plan.labels and load_frauds(fraudkey, ts - keep) or nil
  local vals = {}
  local seen_at = {}
  local runs = {}  -- lo:hi -> {length, first}: a run's two aggregates share one walk
  for j, a in ipairs(plan.aggs) do
    local kind, lo, hi, mode, slot = a[1], ts - a[2], ts - a[3], a[4], a[5]
    local v = 0
    if mode == 'st' and fast then
      local w = st[slot]
      if kind == 'count' then v = w.cnt
      elseif kind == 'sum' then v = w.s + w.sc
      elseif kind == 'sumsq' then v = w.q + w.qc
      elseif kind == 'max' then v = w.mx
      elseif kind == 'distinct' then v = w.dist
      elseif kind == 'seen' then seen_at[j] = slot
      end
    elseif mode == 'last' and fast then
      if T ~= nil and T > lo then v = T else v = nil end
    elseif kind == 'count' then
      v = call('ZCOUNT', logkey, '(' .. lo, hi)
    elseif mode == 'fr' then
      v = fraud_sum(kind, frauds, lo, hi, ts)
    elseif mode == 'run' then
      local rk = a[2] .. ':' .. a[3]
      if runs[rk] == nil then runs[rk] = {fraud_run(logkey, frauds, lo, hi, ts)} end
      if kind == 'run_length' then v = runs[rk][1] else v = runs[rk][2] end
    else
      v = scanned(kind, lo, hi, ets, eamt, eparty, n, party)
    end
    vals[j] = v
  end
  -- record the event
  if fast then
    local before = {}
    for i, win in ipairs(plan.wins) do
      before[i] = win_add(st[i], win, i, partykey, ts, amt, party)
    end
    for j, slot in pairs(seen_at) do vals[j] = before[slot] > 0 and 1 or 0 end
    T = ts
  elseif not dup and st ~= nil and T ~= nil then  -- late: it joins the windows it is in
    for i, win in ipairs(plan.wins) do
      if ts > T - win.w then win_add(st[i], win, i, partykey, ts, amt, party) end
    end
  end
  call('ZADD', logkey, ts, member)
  if nw > 0 then
    if st == nil then st, T = rebuild(plan, logkey, partykey) end
    save_state(plan, winkey, st, T, keep)
    if plan.party then call('PEXPIRE', partykey, keep) end
  end
  call('PEXPIRE', logkey, keep)
  if plan.labels then
    -- %.17g: the amount's text reads back as the same double
    call('SET', P .. 'tx:' .. txid .. ':' .. plan.entity,
         ts .. '|' .. keep .. '|' .. string.format('%.17g', amt) .. '|' .. fraudkey, 'PX', keep)
  end
  local row = {}
  for j = 1, #plan.aggs do
    local v = vals[j]
    if v == nil then row[j] = NAN else row[j] = v end
  end
  return pack(plan.rowfmt, tunpack(row))
end

local batch = ARGV[1]
local pos, out = 1, {}
while pos <= #batch do
  local p, ts, amt, party, nid, ntx
  p, ts, amt, party, nid, ntx, pos = unpack('>BddI4HH', batch, pos)
  local eid = sub(batch, pos, pos + nid - 1)
  local txid = sub(batch, pos + nid, pos + nid + ntx - 1)
  pos = pos + nid + ntx
  out[#out + 1] = one(plans[p + 1], eid, txid, ts, amt, party)
end
return table.concat(out)
