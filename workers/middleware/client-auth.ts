import type { MiddlewareHandler } from "hono";
import type { Client } from "../../schemas/client";
import { markUsed } from "../clients/last-used";
import { resolveClient } from "../clients/resolve";
import { now } from "../clock";
import { sha256, timingSafeEqualStrings } from "../crypto";
import { InvalidClient, InvalidRequest } from "../errors";
import type { AppEnv, AuthMethod } from "../types";

interface Presented {
  method: AuthMethod;
  client_id: string;
  secret?: string;
}

/**
 * Client authentication at the token, pushed authorization request, introspection and revocation
 * endpoints (OAuth 2.1 §2.4; RFC 9126 §2: "The rules for client authentication ... for token endpoint
 * requests ... apply for the PAR endpoint as well").
 * Finds which method the request uses (exactly one), resolves the client and checks it registered
 * that method. Every failure is `invalid_client` with 401; one presented in the Authorization header
 * gets a matching `WWW-Authenticate` challenge (RFC 6749 §5.2).
 */
export const clientAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const presented = present(c.req.header("authorization"), c.var.params);
  const fail = (description: string, detail?: string) => {
    const error = new InvalidClient(description, detail);
    if (presented.method === "client_secret_basic") error.headers["WWW-Authenticate"] = `Basic realm="${c.var.cfg.ISSUER}", charset="UTF-8"`;
    return error;
  };
  const client = await resolveClient(c.env, presented.client_id);
  if (!client) throw fail("client authentication failed", `unknown client ${presented.client_id}`);
  if (client.token_endpoint_auth_method !== presented.method) {
    throw fail("client authentication failed", `client registered ${client.token_endpoint_auth_method}, used ${presented.method}`);
  }
  if (presented.secret !== undefined && !(await secretMatches(client, presented.secret))) {
    throw fail("client authentication failed", "wrong or expired secret");
  }
  markUsed(c, client);
  c.set("client", client);
  c.set("auth_method", presented.method);
  await next();
};

function present(authorization: string | undefined, params: AppEnv["Variables"]["params"]): Presented {
  const bodyId = params.get("client_id");
  const bodySecret = params.get("client_secret");
  const methods = [authorization?.match(/^basic /i) ? "basic" : null, bodySecret ? "post" : null, params.get("client_assertion") ? "jwt" : null].filter(
    Boolean,
  );
  // OAuth 2.1 §2.4: "The client MUST NOT use more than one authentication method in each request."
  if (methods.length > 1) throw new InvalidRequest("more than one client authentication method was used");
  if (methods[0] === "jwt") throw new InvalidClient("client assertion authentication is not supported for this client");
  if (methods[0] === "basic") {
    const basic = parseBasic(authorization as string);
    if (!basic) {
      const error = new InvalidClient("malformed HTTP Basic client credentials");
      error.headers["WWW-Authenticate"] = 'Basic charset="UTF-8"';
      throw error;
    }
    if (bodyId !== undefined && bodyId !== basic.client_id) throw new InvalidRequest("client_id does not match the authenticated client");
    return { method: "client_secret_basic", ...basic };
  }
  if (bodyId === undefined) throw new InvalidClient("client authentication is required (client_id is missing)");
  if (methods[0] === "post") return { method: "client_secret_post", client_id: bodyId, secret: bodySecret };
  return { method: "none", client_id: bodyId };
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before being joined and base64-encoded. */
function parseBasic(header: string): { client_id: string; secret: string } | null {
  try {
    const decoded = atob(header.slice(6).trim());
    const colon = decoded.indexOf(":");
    if (colon < 1) return null;
    const formDecode = (s: string) => decodeURIComponent(s.replaceAll("+", " "));
    return { client_id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
  } catch {
    return null;
  }
}

async function secretMatches(client: Client, secret: string): Promise<boolean> {
  if (!client.client_secret_hash) return false;
  if (client.client_secret_expires_at && client.client_secret_expires_at <= now()) return false;
  return timingSafeEqualStrings(await sha256(secret), client.client_secret_hash);
}
