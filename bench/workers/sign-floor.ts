import { floorToken } from "./floor-token";

/**
 * Control, the signing floor: one ES256 JWT signed with jose per request (`floor-token.ts`), and nothing
 * else. client_credentials cannot be cheaper than this, so it is measured against it.
 */
export default {
  fetch: floorToken,
} satisfies ExportedHandler;
