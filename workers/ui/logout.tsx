import { Layout } from "./layout";
import { NotSentBack } from "./pages";

/** The request a confirmation carries back to `/logout/confirm`, re-checked there. */
export interface LogoutFields {
  id_token_hint?: string;
  client_id?: string;
  post_logout_redirect_uri?: string;
  state?: string;
  /** The account the confirmation was shown to (the form answers only for it). */
  for?: string;
}

/** OpenID RP-Initiated Logout 1.0 §2: the OP asks whether the user wants to sign out. */
export function LogoutConfirmPage(props: { csrf: string; email: string; clientName?: string; fields: LogoutFields }) {
  return (
    <Layout title="Sign out?">
      <h1>Sign out?</h1>
      <p>
        {props.clientName ? (
          <>
            <strong>{props.clientName}</strong> asks to sign you out of this server.
          </>
        ) : (
          "An application asks to sign you out of this server."
        )}
      </p>
      <p class="muted">Signed in as {props.email}</p>
      <form method="post" action="/logout/confirm">
        <input type="hidden" name="csrf" value={props.csrf} />
        {Object.entries(props.fields).map(([name, value]) => (value === undefined ? null : <input type="hidden" name={name} value={value} />))}
        <div class="actions">
          <button type="submit" name="decision" value="sign_out">
            Sign out
          </button>
          <button type="submit" name="decision" value="stay">
            Stay signed in
          </button>
        </div>
      </form>
    </Layout>
  );
}

/** The end of a logout that has nowhere registered to return to. */
export function LoggedOutPage(props: { signedOut: boolean; notReturnedTo?: string }) {
  return (
    <Layout title={props.signedOut ? "Signed out" : "Still signed in"}>
      <h1>{props.signedOut ? "Signed out" : "Still signed in"}</h1>
      <p role="status">{props.signedOut ? "You are signed out of this server. You can close this page." : "You stayed signed in."}</p>
      {props.notReturnedTo ? <NotSentBack host={props.notReturnedTo} /> : null}
    </Layout>
  );
}
