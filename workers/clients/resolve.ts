import { type Client, DYNAMIC_CLIENT_ID } from "../../schemas/client";
import { config } from "../config";
import { findClient } from "./cache";
import { dynamicClient } from "./pushed-registration";

/**
 * The client a `client_id` names: the static identifier of pushed client registration needs no lookup
 * (it stands for any unregistered client, and is refused when that feature is off); any other is a
 * registered client, read through the cache. Null when there is no such client.
 */
export async function resolveClient(env: Env, clientId: string): Promise<Client | null> {
  if (clientId === DYNAMIC_CLIENT_ID) return config(env).PUSHED_CLIENT_REGISTRATION ? dynamicClient() : null;
  return findClient(env, clientId);
}
