import { MethodNotAllowed } from "../errors";

/** A handler for a known path used with the wrong method: 405 with an Allow header. */
export function methodNotAllowed(allow: string) {
  return () => {
    const error = new MethodNotAllowed(`use ${allow}`);
    error.headers.Allow = allow;
    throw error;
  };
}
