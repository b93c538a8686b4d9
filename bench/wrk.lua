-- One wrk script for every scenario of bench/run.py. Environment:
--   MODE     get | filter_user | filter_email | list | list_deep | post | patch_deactivate | member_add | check | bare
--   N        users seeded (userNames u1..uN, e-mails uI@example.com)
--   IDS      file with one user id per line (peers, whose ids are random); else ids follow
--            seatbridge's seeded pattern 00000000-0000-7000-8000-%012d
--   TOKEN    bearer token;  PREFIX  SCIM base path (/scim/v2 or /v2);  GROUP  group id (member_add)
--   TENANT   tenant slug (check);  TAG  makes POSTed userNames unique across runs
--   LO       lowest user number picked (default 1)

local mode = os.getenv("MODE") or "get"
local n = tonumber(os.getenv("N") or "1000")
local prefix = os.getenv("PREFIX") or "/scim/v2"
local group = os.getenv("GROUP") or ""
local tenant = os.getenv("TENANT") or "bench"
local tag = os.getenv("TAG") or "t"
local headers = {
  ["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or ""),
  ["Content-Type"] = "application/scim+json",
}
local ids = nil

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  math.randomseed(os.time() * 100 + (tid or 0))
  local path = os.getenv("IDS")
  if path and path ~= "" then
    ids = {}
    for line in io.lines(path) do ids[#ids + 1] = line end
    n = #ids
  end
  counter = 0
end

local lo = tonumber(os.getenv("LO") or "1")

local function pick()
  return math.random(lo, n)
end

local function user_id(i)
  if ids then return ids[i] end
  return string.format("00000000-0000-7000-8000-%012d", i)
end

local function q(s)
  return (s:gsub(" ", "%%20"):gsub('"', "%%22"):gsub("%[", "%%5B"):gsub("%]", "%%5D"))
end

function request()
  if mode == "bare" then
    return wrk.format("GET", "/")
  elseif mode == "get" then
    return wrk.format("GET", prefix .. "/Users/" .. user_id(pick()), headers)
  elseif mode == "filter_user" then
    return wrk.format("GET", prefix .. "/Users?filter=" .. q('userName eq "u' .. pick() .. '"'), headers)
  elseif mode == "filter_email" then
    return wrk.format("GET", prefix .. "/Users?filter=" .. q('emails[value eq "u' .. pick() .. '@example.com"]'), headers)
  elseif mode == "list" then
    return wrk.format("GET", prefix .. "/Users?count=100", headers)
  elseif mode == "list_deep" then
    -- The last page of a full import (Okta "Import users" pages with startIndex).
    return wrk.format("GET", prefix .. "/Users?count=100&startIndex=" .. math.max(1, n - 99), headers)
  elseif mode == "post" then
    counter = counter + 1
    local name = string.format("new-%s-%d-%d", tag, tid or 0, counter)
    local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. name ..
      '","active":true,"name":{"givenName":"New","familyName":"User"},"emails":[{"value":"' .. name ..
      '@example.com","primary":true,"type":"work"}]}'
    return wrk.format("POST", prefix .. "/Users", headers, body)
  elseif mode == "patch_deactivate" then
    -- Deactivations and reactivations at random: deactivations alone turned into no-op writes
    -- once every user of a small tenant was inactive (1,000 users: after about a second).
    local active = math.random(2) == 1 and "true" or "false"
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],' ..
      '"Operations":[{"op":"replace","value":{"active":' .. active .. '}}]}'
    return wrk.format("PATCH", prefix .. "/Users/" .. user_id(pick()), headers, body)
  elseif mode == "member_add" then
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],' ..
      '"Operations":[{"op":"add","path":"members","value":[{"value":"' .. user_id(pick()) .. '"}]}]}'
    return wrk.format("PATCH", prefix .. "/Groups/" .. group, headers, body)
  elseif mode == "check" then
    return wrk.format("GET", "/api/v1/entitlements/check?tenant=" .. tenant .. "&user=u" .. pick() ..
      "&feature=sso", headers)
  end
end
