// A standalone launch as client-js documents it: the FHIR server (iss) and the scopes
// come from the page's query (the test chooses them); the rest is the app's own.
const asked = new URLSearchParams(location.search);
FHIR.oauth2
  .authorize({
    clientId: asked.get("client") || "chart-viewer",
    scope: asked.get("scope") || "launch/patient patient/*.rs openid fhirUser offline_access",
    iss: asked.get("iss"),
    redirectUri: "callback.html",
    pkceMode: "required",
  })
  .catch((error) => {
    window.appDone = { launch: { error: String(error) } };
  });
