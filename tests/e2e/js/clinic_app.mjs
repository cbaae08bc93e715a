// A clinic app written on fhir-kit-client (from npm), driving `carevault serve` the way
// a JavaScript front end or integration would. It is given the server's base and tokens
// as JSON on stdin, runs each step, and prints one JSON object: for every step what the
// library returned or the status and body of the error it raised. The Python test
// (tests/e2e/test_fhir_kit_client.py) decides what is right; this script only records.
import { CapabilityTool, Client } from 'fhir-kit-client';

const HKID = 'http://carevault.hk/sid/hkid';

const input = JSON.parse(await new Promise((resolve) => {
  let text = '';
  process.stdin.on('data', (chunk) => { text += chunk; });
  process.stdin.on('end', () => resolve(text));
}));

const desk = new Client({ baseUrl: input.fhir, bearerToken: input.deskToken });
const doctor = new Client({ baseUrl: input.fhir, bearerToken: input.doctorToken });
const steps = {};

function headersOf(result) {
  const { response } = Client.httpFor(result);
  if (!response) return {};
  const wanted = ['etag', 'location', 'content-location', 'last-modified', 'content-type',
    'content-encoding'];
  const found = Object.fromEntries(wanted.filter((name) => response.headers.has(name))
    .map((name) => [name, response.headers.get(name)]));
  // fetch follows redirects by itself: say so, and where it ended.
  if (response.redirected) found.redirectedTo = response.url;
  return found;
}

// Runs one step; its value is what the library resolved to (with the headers the
// response carried), or how it failed: the status and body an HTTP error carried, or
// the message of any other error (a body the library could not parse, a URL it built).
async function step(name, call) {
  try {
    const result = await call();
    const status = result ? Client.httpFor(result).response?.status : undefined;
    steps[name] = { ok: true, status, headers: result ? headersOf(result) : {}, body: result };
  } catch (error) {
    steps[name] = {
      ok: false,
      status: error.response?.status,
      body: error.response?.data,
      message: String(error.message),
    };
  }
  return steps[name];
}

function patient(family, hkid) {
  const resource = {
    resourceType: 'Patient',
    name: [{ family, given: ['Siu Ming'] }],
    gender: 'male',
    birthDate: '1984-05-06',
  };
  if (hkid) resource.identifier = [{ system: HKID, value: hkid }];
  return resource;
}

await step('capabilityStatement', () => desk.capabilityStatement());
await step('smartAuthMetadata', async () => {
  const found = await desk.smartAuthMetadata();
  return { tokenUrl: String(found.tokenUrl), authorizeUrl: String(found.authorizeUrl) };
});

const created = await step('create', () => desk.create({
  resourceType: 'Patient', body: patient('Chan', input.hkids[0]),
}));
const id = created.body?.id;
await step('read', () => desk.read({ resourceType: 'Patient', id }));
await step('update', () => desk.update({
  resourceType: 'Patient', id, body: { ...created.body, gender: 'male', birthDate: '1984-05-07' },
}));
await step('vread', () => desk.vread({ resourceType: 'Patient', id, version: '1' }));
await step('patch', () => desk.patch({
  resourceType: 'Patient',
  id,
  jsonPatch: [{ op: 'replace', path: '/birthDate', value: '1984-05-08' }],
  options: { headers: { 'If-Match': 'W/"2"' } },
}));
await step('patchStale', () => desk.patch({
  resourceType: 'Patient',
  id,
  jsonPatch: [{ op: 'replace', path: '/birthDate', value: '1984-05-09' }],
  options: { headers: { 'If-Match': 'W/"1"' } },
}));
await step('history', () => desk.history({ resourceType: 'Patient', id }));

// Conditional create (If-None-Exist), twice: the second finds the first.
const ifNoneExist = { headers: { 'If-None-Exist': `identifier=${HKID}|${input.hkids[1]}` } };
await step('conditionalCreate', () => desk.create({
  resourceType: 'Patient', body: patient('Wong', input.hkids[1]), options: ifNoneExist,
}));
await step('conditionalCreateAgain', () => desk.create({
  resourceType: 'Patient', body: patient('Wong', input.hkids[1]), options: ifNoneExist,
}));
await step('conditionalUpdate', () => desk.update({
  resourceType: 'Patient',
  searchParams: { identifier: `${HKID}|${input.hkids[1]}` },
  body: { ...patient('Wong', input.hkids[1]), birthDate: '1990-01-02' },
}));

// Twelve patients of one family, searched five at a time: forward to the end and back.
for (let index = 0; index < 12; index += 1) {
  await desk.create({ resourceType: 'Patient', body: patient(`Pagefam${index}`) });
}
const pages = [];
let page = await desk.search({
  resourceType: 'Patient', searchParams: { name: 'Siu Ming', family: 'Pagefam', _count: 5 },
});
pages.push(page);
while (pages.length < 10) {
  const next = desk.nextPage({ bundle: page });
  if (!next) break;
  page = await next;
  pages.push(page);
}
const backPages = [];
while (backPages.length < 10) {
  const previous = desk.prevPage({ bundle: page });
  if (!previous) break;
  page = await previous;
  backPages.push(page);
}
steps.paging = {
  ok: true,
  forward: pages.map((bundle) => (bundle.entry ?? []).map((entry) => entry.resource.id)),
  backward: backPages.map((bundle) => (bundle.entry ?? []).map((entry) => entry.resource.id)),
  relations: pages.map((bundle) => (bundle.link ?? []).map((link) => link.relation)),
};
await step('postSearch', () => desk.search({
  resourceType: 'Patient',
  searchParams: { family: 'Pagefam', _count: 5 },
  options: { postSearch: true },
}));

// The doctor records a visit and an observation, and reads the chart.
const encounter = await step('encounter', () => doctor.create({
  resourceType: 'Encounter',
  body: {
    resourceType: 'Encounter',
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: `Patient/${id}` },
    period: { start: '2026-11-27T09:00:00+08:00', end: '2026-11-27T09:20:00+08:00' },
  },
}));
await step('everything', () => doctor.operation({
  name: '$everything', resourceType: 'Patient', id, method: 'GET',
}));
await step('compartmentSearch', () => doctor.search({
  resourceType: 'Observation', compartment: { resourceType: 'Patient', id },
}));
await step('resolve', () => doctor.resolve({ reference: `Patient/${id}` }));

const transactionBody = {
  resourceType: 'Bundle',
  type: 'transaction',
  entry: [{
    fullUrl: 'urn:uuid:0b5bd1c6-3b1a-4a43-9d5e-6c2a3f1e2d01',
    resource: patient('Lee', input.hkids[2]),
    request: { method: 'POST', url: 'Patient' },
  }, {
    // A conditional update, as HL7 v2 and CDA converters send them: "the patient with
    // this HKID" (the one created first), whatever its id.
    resource: { ...patient('Chan', input.hkids[0]), birthDate: '1984-05-09' },
    request: { method: 'PUT', url: `Patient?identifier=${HKID}|${input.hkids[0]}` },
  }],
};
await step('transaction', () => desk.transaction({ body: transactionBody }));
await step('batch', () => desk.batch({
  body: {
    resourceType: 'Bundle',
    type: 'batch',
    entry: [{ request: { method: 'GET', url: `Patient/${id}` } }],
  },
}));

await step('systemSearch', () => desk.search({ searchParams: { _id: id } }));
await step('systemPostSearch', () => desk.search({
  searchParams: { _id: id }, options: { postSearch: true },
}));
await step('typeHistory', () => desk.history({ resourceType: 'Patient' }));
await step('systemHistory', () => desk.history({}));
await step('validate', () => desk.operation({
  name: 'validate', resourceType: 'Patient', input: patient('Ho'),
}));
await step('unsigned', () => new Client({ baseUrl: input.fhir }).read({ resourceType: 'Patient', id }));

// Refusals: an invalid resource, a search parameter the server does not know.
await step('invalid', () => desk.create({
  resourceType: 'Patient',
  body: { resourceType: 'Patient', birthDate: 'Tai Man 1980' },
}));
await step('unknownParameter', () => desk.search({
  resourceType: 'Patient', searchParams: { family: 'chan', colour: 'blue' },
}));

// Deletes: one by id, then a conditional delete by the second patient's HKID.
await step('deleteEncounter', () => doctor.delete({ resourceType: 'Encounter', id: encounter.body?.id }));
await step('delete', () => desk.delete({ resourceType: 'Patient', id }));
await step('readDeleted', () => desk.read({ resourceType: 'Patient', id }));
await step('conditionalDelete', () => desk.request(
  `Patient?identifier=${encodeURIComponent(`${HKID}|${input.hkids[1]}`)}`,
  { method: 'DELETE' },
));

// A SMART backend service (a confidential client of the clinic): finds the token
// endpoint as the library does, asks it for a token with its secret, and works with it.
await step('backendService', async () => {
  const { tokenUrl } = await desk.smartAuthMetadata();
  const granted = await fetch(tokenUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${input.backend.id}:${input.backend.secret}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'system/*.cruds' }),
  });
  const { access_token: token, scope } = await granted.json();
  const service = new Client({ baseUrl: input.fhir, bearerToken: token });
  const made = await service.create({ resourceType: 'Patient', body: patient('Feed') });
  const read = await service.read({ resourceType: 'Patient', id: made.id });
  return { scope, id: made.id, readId: read.id, family: read.name[0].family };
});

const tool = new CapabilityTool(steps.capabilityStatement.body ?? {});
steps.capabilityTool = {
  ok: true,
  transaction: tool.serverCan('transaction'),
  batch: tool.serverCan('batch'),
  historySystem: tool.serverCan('history-system'),
  searchSystem: tool.serverCan('search-system'),
  patientInteractions: tool.interactionsFor({ resourceType: 'Patient' }),
  patientFamily: tool.resourceSearch('Patient', 'family'),
};
delete steps.capabilityStatement.body;

process.stdout.write(JSON.stringify(steps));
