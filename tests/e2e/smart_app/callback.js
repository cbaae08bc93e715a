// What a small chart viewer does once the browser is back with its code: ready(), the
// patient in context and their Observations page by page, who the user is, a refresh.
// Each step's outcome (or the error client-js gave) goes into window.appDone for the
// test to read; window.smartClient is kept for the steps the test runs afterwards.
const out = {};

async function step(name, work) {
  try {
    out[name] = await work();
  } catch (error) {
    out[name] = { error: String(error), status: error.status || null };
  }
}

async function run() {
  let client;
  try {
    client = await FHIR.oauth2.ready();
  } catch (error) {
    out.ready = { error: String(error) };
    return;
  }
  window.smartClient = client;
  const token = client.state.tokenResponse;
  out.token = {
    patient: token.patient || null,
    scope: token.scope,
    expires_in: token.expires_in,
    token_type: token.token_type,
    refresh: Boolean(token.refresh_token),
  };
  out.patientId = client.patient.id;
  out.fhirUser = client.user.fhirUser;
  out.idToken = client.getIdToken();
  if (client.patient.id) {
    await step("patient", async () => (await client.patient.read()).id);
    await step("observations", async () => {
      const found = await client.request(
        "Observation?patient=" + client.patient.id + "&_count=2",
        { pageLimit: 0, flat: true },
      );
      return found.map((item) => item.subject.reference);
    });
  } else {
    await step("practitioners", async () => {
      const found = await client.request("Practitioner?_count=1", { pageLimit: 2, flat: true });
      return found.length;
    });
  }
  await step("user", async () => {
    const user = await client.user.read();
    return user.resourceType + "/" + user.id;
  });
  const before = token.access_token;
  await step("refresh", async () => {
    const state = await client.refresh();
    return {
      changed: state.tokenResponse.access_token !== before,
      patient: state.tokenResponse.patient || null,
      refresh: Boolean(state.tokenResponse.refresh_token),
    };
  });
  await step("afterRefresh", async () => (await client.user.read()).id);
}

run().finally(() => {
  window.appDone = out;
  document.getElementById("out").textContent = JSON.stringify(out, null, 1);
});
