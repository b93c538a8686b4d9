// SCIMMY peer for bench/run.sh: scimmy + scimmy-routers on express, users and groups in memory.
// Usage: node server.mjs PORT TOKEN
import express from "express";
import { randomUUID } from "node:crypto";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";

const [port, token] = process.argv.slice(2);
const store = { User: new Map(), Group: new Map() };

function declare(resource, kind) {
  SCIMMY.Resources.declare(resource)
    .ingress((res, instance) => {
      const id = res.id ?? randomUUID();
      if (res.id && !store[kind].has(id)) throw new SCIMMY.Types.Error(404, null, `Resource ${id} not found`);
      if (!res.id && kind === "User" && [...store.User.values()].some((u) => u.userName === instance.userName)) {
        throw new SCIMMY.Types.Error(409, "uniqueness", "userName is taken");
      }
      const now = new Date();
      const record = { ...instance, id, meta: { created: store[kind].get(id)?.meta?.created ?? now, lastModified: now } };
      store[kind].set(id, record);
      return record;
    })
    .egress((res) => {
      if (res.id) {
        const found = store[kind].get(res.id);
        if (!found) throw new SCIMMY.Types.Error(404, null, `Resource ${res.id} not found`);
        return found;
      }
      const all = [...store[kind].values()];
      return res.filter ? res.filter.match(all) : all;
    })
    .degress((res) => {
      if (!store[kind].delete(res.id)) throw new SCIMMY.Types.Error(404, null, `Resource ${res.id} not found`);
    });
}
declare(SCIMMY.Resources.User, "User");
declare(SCIMMY.Resources.Group, "Group");

const app = express();
app.use(
  "/scim/v2",
  new SCIMMYRouters({
    type: "bearer",
    docUri: "https://example.com/",
    handler: (req) => {
      if (req.header("Authorization") !== `Bearer ${token}`) throw new Error("Authorization not detected!");
      return "bench";
    },
  }),
);
app.listen(Number(port), "127.0.0.1", () => console.log(`scimmy listening on ${port}`));
