// The API reference page: fetches /openapi.json (same origin) and renders the security schemes
// and one block per operation, with the authorization it needs: the security requirement, the
// permissions and roles the handler declares (x-required-permissions, x-required-roles) and the
// whole rule (x-requirement). Text only (textContent): no HTML from the document is parsed,
// which the page's CSP (Trusted Types, no inline script) enforces anyway.
'use strict';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (className) e.className = className;
  return e;
}

function code(text) {
  return el('code', text);
}

/** "any of: bearer, apiKey, dpop", "none (public)", or the AND of a requirement's schemes. */
function securityText(security) {
  if (!Array.isArray(security)) return 'the document default';
  if (security.length === 0) return 'none (public)';
  const alternatives = security.map((req) => {
    const names = Object.keys(req);
    return names.length === 0 ? 'anonymous' : names.join(' + ');
  });
  return alternatives.length === 1 ? alternatives[0] : `any of: ${alternatives.join(', ')}`;
}

function listOrDash(values) {
  const dd = el('dd');
  if (!Array.isArray(values) || values.length === 0) {
    dd.textContent = '—';
    return dd;
  }
  values.forEach((v, i) => {
    if (i > 0) dd.append(', ');
    dd.append(code(v));
  });
  return dd;
}

function renderSchemes(doc) {
  const tbody = document.querySelector('#schemes tbody');
  const schemes = (doc.components && doc.components.securitySchemes) || {};
  for (const [name, s] of Object.entries(schemes)) {
    const tr = el('tr');
    const first = el('td');
    first.append(code(name));
    tr.append(first, el('td', s.type), el('td', [s.scheme, s.bearerFormat].filter(Boolean).join(' · ')), el('td', s.description || ''));
    tbody.append(tr);
  }
}

function renderOperation(path, method, op) {
  const box = el('article', undefined, 'op');
  box.id = op.operationId || `${method}-${path}`;
  const h = el('h3');
  h.append(el('span', method.toUpperCase(), 'method'), path);
  box.append(h);
  if (op.summary) box.append(el('p', op.summary));
  const dl = el('dl');
  const row = (term, dd) => dl.append(el('dt', term), dd);
  row('security', el('dd', securityText(op.security)));
  row('permissions', listOrDash(op['x-required-permissions']));
  if (op['x-required-roles']) row('roles', listOrDash(op['x-required-roles']));
  const rule = el('dd');
  rule.append(code(op['x-requirement'] || ''));
  row('requirement', rule);
  const params = (op.parameters || []).map((p) => `${p.name} (${p.in})`);
  if (params.length) row('parameters', el('dd', params.join(', ')));
  const codes = Object.keys(op.responses || {});
  row('responses', el('dd', codes.join(', ')));
  box.append(dl);
  return box;
}

async function main() {
  const response = await fetch('/openapi.json', { headers: { accept: 'application/json' } });
  if (!response.ok) throw new Error(`GET /openapi.json: ${response.status}`);
  const doc = await response.json();
  document.getElementById('title').textContent = `${doc.info.title} ${doc.info.version} — API reference`;
  document.title = `${doc.info.title} API reference`;
  document.getElementById('description').textContent = doc.info.description || '';
  renderSchemes(doc);
  const ops = document.getElementById('operations');
  for (const path of Object.keys(doc.paths).sort()) {
    for (const method of METHODS) {
      const op = doc.paths[path][method];
      if (op) ops.append(renderOperation(path, method, op));
    }
  }
}

main()
  .catch((e) => {
    document.getElementById('error').textContent = `Could not load the API description: ${e.message}`;
  })
  .finally(() => {
    document.body.dataset.ready = 'true';
  });
