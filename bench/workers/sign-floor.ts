import { clientFloor } from "./client-floor";
import { floorToken } from "./floor-token";

/**
 * Control, the signing floor: one ES256 JWT signed with jose per request (`floor-token.ts`), and nothing
 * else. client_credentials cannot be cheaper than this, so it is measured against it. At `/client`, the
 * client-credentials floor (`client-floor.ts`): the signature plus the rest of what such a request must do.
 */
export default {
  fetch: (request) => (request.url.endsWith("/client") ? clientFloor(request) : floorToken()),
} satisfies ExportedHandler;
