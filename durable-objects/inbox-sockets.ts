import { now as clock } from "../workers/clock";

/**
 * The inbox's live sockets on an ApprovalQueue (hibernating WebSockets): each carries, as its attachment,
 * until when the session that opened it lasts, and is closed once that has passed.
 */

/** The header by which the Worker tells the queue until when (seconds) the session opening a socket lasts. */
export const SESSION_UNTIL_HEADER = "x-latchkey-session-until";

/** Whether the socket's session still lasts; one that ended is closed. */
export function sessionLasts(ws: WebSocket): boolean {
  const { until } = (ws.deserializeAttachment() ?? { until: 0 }) as { until: number };
  if (until > clock()) return true;
  try {
    ws.close(4001, "the session ended; sign in again");
  } catch {
    // Already closing.
  }
  return false;
}
