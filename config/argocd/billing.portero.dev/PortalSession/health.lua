-- Argo CD health of a Portero PortalSession, read from its phase and kstatus conditions.
-- An Expired or Revoked session is Suspended, not Degraded: a link that ends is the normal
-- course of a session, and must not turn the application red. The operator marks ended
-- sessions Stalled (nothing left to do), which is why the phase is read first.
-- Argo CD runs configured scripts without Lua's string library: only base and table here.
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Portero operator to make the link"
  return hs
end
-- A status from before the latest spec change (spec.revoked: true, say) is not the answer yet.
if obj.status.observedGeneration == nil or obj.metadata.generation == nil or
    obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Portero operator to observe the latest spec"
  return hs
end

local ready = condition("Ready")
if obj.status.phase == "Expired" or obj.status.phase == "Revoked" then
  hs.status = "Suspended"
  if ready ~= nil and ready.message ~= nil then
    hs.message = ready.message
  else
    hs.message = "The session is " .. obj.status.phase .. "; its link no longer works"
  end
  return hs
end

local stalled = condition("Stalled")
if isTrue(stalled) then
  hs.status = "Degraded"
  hs.message = stalled.message or stalled.reason or "Stalled"
  return hs
end
if isTrue(ready) then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end
local reconciling = condition("Reconciling")
if isTrue(reconciling) then
  hs.status = "Progressing"
  hs.message = reconciling.message or reconciling.reason or "Reconciling"
  return hs
end
hs.status = "Progressing"
if ready ~= nil and ready.message ~= nil then
  hs.message = ready.message
else
  hs.message = "Waiting for the Ready condition"
end
return hs
