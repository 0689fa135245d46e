import { Layout } from "./layout";

/** Where a sign-in goes on to: an authorization request (`/login`), or one of our own pages (`/signin`: inbox, device). */
export type SignInTarget =
  | {
      interaction: string;
      clientName: string;
      unregistered?: boolean;
      /** A client that registered itself (RFC 7591): its name is its own claim; this is where the answer goes. */
      selfRegisteredAt?: string;
    }
  | { next: string; purpose: string };

/** The sign-in form (fields labelled Email and Password, button Sign in). */
export function LoginPage(props: SignInTarget & { csrf: string; error?: string; email?: string }) {
  const forClient = "interaction" in props;
  return (
    <Layout title="Sign in">
      <h1>Sign in</h1>
      <p>
        {!forClient ? (
          props.purpose
        ) : props.unregistered ? (
          <>
            to continue to an unregistered application that calls itself <strong>“{props.clientName}”</strong>
          </>
        ) : props.selfRegisteredAt ? (
          <>
            to continue to an application that registered itself as <strong>“{props.clientName}”</strong>, whose answer goes to{" "}
            <strong>{props.selfRegisteredAt}</strong>
          </>
        ) : (
          <>
            to continue to <strong>{props.clientName}</strong>
          </>
        )}
      </p>
      {props.error ? (
        <p class="error" role="alert" id="login-error">
          {props.error}
        </p>
      ) : null}
      <form method="post" action={forClient ? "/login" : "/signin"}>
        {forClient ? <input type="hidden" name="interaction" value={props.interaction} /> : <input type="hidden" name="next" value={props.next} />}
        <input type="hidden" name="csrf" value={props.csrf} />
        <label for="email">Email</label>
        <input
          id="email"
          name="email"
          type="email"
          autocomplete="username"
          required
          value={props.email ?? ""}
          aria-describedby={props.error ? "login-error" : undefined}
        />
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required />
        <button type="submit">Sign in</button>
      </form>
    </Layout>
  );
}

export interface ConsentView {
  clientName: string;
  /** Where the client comes from: the host of a URL client_id, or of the client_uri an administrator registered. */
  clientOrigin?: string;
  /** The host (or private-use scheme) the answer goes to: its redirect URI. */
  redirectTo: string;
  /** For a client whose client_id is a URL: that URL's host, the one fact about it the server checked. */
  metadataDocumentHost?: string;
  /** Whether anybody vouched for the client (admin-registered) or it registered itself. */
  selfRegistered: boolean;
  /** Pushed client registration: no registration at all; the name is self-asserted. `redirectTo`: where the answer goes. */
  unregistered?: { redirectTo: string };
  userEmail: string;
  /** The `sub` of that user: the form says whose answer it is, so another account signed in meanwhile is asked anew. */
  userId: string;
  scopes: string[];
  resources: Array<{ name: string; uri: string }>;
}

/** The consent page: who asks, for what, at which resource; buttons Allow and Deny. */
export function ConsentPage(props: { interaction: string; csrf: string; view: ConsentView }) {
  const v = props.view;
  const host = v.metadataDocumentHost;
  return (
    <Layout title="Allow access?">
      {v.unregistered ? (
        <>
          <h1>Allow an unregistered application to access your account?</h1>
          <p class="warning" role="note" id="unregistered">
            <strong>This application is not registered with this server.</strong> It calls itself <strong>“{v.clientName}”</strong>, but anyone can use any
            name: nobody has verified who runs it. Allow it only if you started this yourself, just now.
          </p>
          <p>
            If you allow it, you will be sent to <strong>{v.unregistered.redirectTo}</strong>.
          </p>
        </>
      ) : host ? (
        <>
          {v.clientName === host ? (
            <h1>
              Allow <strong class="host">{host}</strong> to access your account?
            </h1>
          ) : (
            <h1>
              Allow <strong>{v.clientName}</strong> from <strong class="host">{host}</strong> to access your account?
            </h1>
          )}
          <p class="self-asserted" id="self-asserted">
            <strong>Self-asserted:</strong> this application describes itself in a document published at <strong class="host">{host}</strong>. Its name and
            details are its own claims; nobody at this server has verified who runs it. Continue only if you trust {host}.
          </p>
        </>
      ) : (
        <>
          <h1>
            Allow <strong>{v.clientName}</strong> to access your account?
          </h1>
          {v.clientOrigin ? (
            <p>
              This application is from <strong>{v.clientOrigin}</strong>.
            </p>
          ) : null}
          {v.selfRegistered ? (
            <p class="self-asserted" id="self-registered">
              It registered itself; nobody at this server has verified who runs it. If you allow it, you will be sent to{" "}
              <strong class="host">{v.redirectTo}</strong>.
            </p>
          ) : null}
        </>
      )}
      <p class="muted">Signed in as {v.userEmail}</p>
      <h2>It will be able to</h2>
      <ul class="scopes">{v.scopes.length ? v.scopes.map((s) => <li>{s}</li>) : <li>confirm who you are</li>}</ul>
      {v.resources.length ? (
        <>
          <h2>On</h2>
          <ul class="scopes">
            {v.resources.map((r) => (
              <li>
                {r.name} <code>{r.uri}</code>
              </li>
            ))}
          </ul>
        </>
      ) : null}
      <form method="post" action="/consent">
        <input type="hidden" name="interaction" value={props.interaction} />
        <input type="hidden" name="csrf" value={props.csrf} />
        <input type="hidden" name="for" value={v.userId} />
        <div class="actions">
          <button type="submit" name="decision" value="allow">
            Allow
          </button>
          <button type="submit" name="decision" value="deny">
            Deny
          </button>
        </div>
      </form>
    </Layout>
  );
}

/**
 * Shown when the request cannot safely be sent back to the client: bad client_id or redirect_uri, or an
 * error for a self-registered client before anyone signed in (`selfRegisteredClientAt`: where it would have gone).
 */
/** Why the browser stays here instead of going back to a client that registered itself (RFC 9700 §4.11.2). */
export function NotSentBack(props: { host: string }) {
  return (
    <p id="not-redirected">
      The application that sent you here returns to <strong class="host">{props.host}</strong>. It registered itself and nobody at this server has verified who
      runs it, so you were not sent back there.
    </p>
  );
}

export function ErrorPage(props: { title: string; message: string; code?: string; selfRegisteredClientAt?: string }) {
  return (
    <Layout title={props.title}>
      <h1>{props.title}</h1>
      <p role="alert">{props.message}</p>
      {props.code ? (
        <p class="muted">
          Error: <code>{props.code}</code>
        </p>
      ) : null}
      {props.selfRegisteredClientAt ? <NotSentBack host={props.selfRegisteredClientAt} /> : null}
    </Layout>
  );
}
