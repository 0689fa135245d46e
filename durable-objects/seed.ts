import type { Resource, User } from "../schemas/resource";
import { hashPassword } from "../workers/password";
import type { RegistryCache } from "./registry-cache";

/**
 * The development seed (README "Running locally"): two users and the example MCP server as a resource.
 * Runs once per storage, only when ENVIRONMENT is `dev` (the Registry checks before calling).
 */
export async function seedDevData(storage: DurableObjectStorage, cache: RegistryCache): Promise<void> {
  if (await storage.get("seeded")) return;
  const now = Math.floor(Date.now() / 1000);
  const users: User[] = [
    { id: "usr_dev_alice", email: "alice@example.com", name: "Alice Example", password: await hashPassword("alice-dev-password"), created_at: now },
    { id: "usr_dev_bob", email: "bob@example.com", name: "Bob Example", password: await hashPassword("bob-dev-password"), created_at: now },
  ];
  const mcp: Resource = {
    id: "res_dev_example_mcp",
    resource: "http://localhost:8788/mcp",
    name: "Example MCP server",
    scopes_supported: ["mcp:read", "mcp:write"],
    // Agents that identify themselves (a client ID metadata document, or registration) may read without paperwork.
    self_registered_client_credentials_scopes: ["mcp:read"],
    created_at: now,
  };
  const writes: Record<string, unknown> = { seeded: now, [`resource:${mcp.id}`]: mcp, [`resource-uri:${mcp.resource}`]: mcp.id };
  for (const u of users) {
    writes[`user:${u.id}`] = u;
    writes[`user-email:${u.email}`] = u.id;
  }
  await storage.put(writes);
  await cache.publish(`resource-uri:${mcp.resource}`);
}
