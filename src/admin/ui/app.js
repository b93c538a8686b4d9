// seatbridge admin console — plain ES2020, no framework, no build step.
// DOM is built with h()/s() (createElement + textContent), never innerHTML with data.

const API = '/api/v1';
const state = { me: null, plans: null, tenantNames: new Map() };
let routeSeq = 0; // increments on every navigation; stale async renders bail out

// ---------------------------------------------------------------- DOM helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k === 'testid') el.setAttribute('data-testid', v);
    else if (k === 'value' || k === 'checked' || k === 'selected') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const $ = (id) => document.getElementById(id);

function replace(el, ...children) {
  el.replaceChildren();
  append(el, ...children);
  return el;
}

// ---------------------------------------------------------------- formatting

const dateFmt = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const shortDayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const numFmt = new Intl.NumberFormat();

function fmtDate(iso) { return iso ? dateFmt.format(new Date(iso)) : '—'; }
function fmtDateTime(iso) { return iso ? dateTimeFmt.format(new Date(iso)) : '—'; }

function ago(iso) {
  const secs = (new Date(iso).getTime() - Date.now()) / 1000;
  const units = [['year', 31536000], ['month', 2592000], ['week', 604800], ['day', 86400], ['hour', 3600], ['minute', 60]];
  for (const [unit, size] of units) {
    if (Math.abs(secs) >= size) return rtf.format(Math.round(secs / size), unit);
  }
  return 'just now';
}

function timeEl(iso, text) {
  if (!iso) return h('span', { class: 'muted' }, text || 'never');
  return h('time', { datetime: iso, title: fmtDateTime(iso) }, text || ago(iso));
}

function expiryText(expiresAt) {
  if (!expiresAt) return 'perpetual';
  const days = Math.round((new Date(expiresAt).getTime() - Date.now()) / 86400000);
  const plural = (n) => `${n} day${n === 1 ? '' : 's'}`;
  if (days > 0) return `expires in ${plural(days)}`;
  if (days === 0) return new Date(expiresAt).getTime() > Date.now() ? 'expires today' : 'expired today';
  return `expired ${plural(-days)} ago`;
}

const IDP_NAMES = { okta: 'Okta', entra: 'Microsoft Entra ID', other: 'Other IdP' };
function idpName(idp) {
  if (!idp) return 'Unknown';
  if (idp.kind !== 'other' && IDP_NAMES[idp.kind]) return IDP_NAMES[idp.kind];
  return idp.user_agent || IDP_NAMES.other;
}

function labelize(s) { return String(s || '').replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase()); }

function badge(text, tone, attrs) {
  return h('span', { class: ['badge', `badge-${tone}`], ...attrs }, text);
}

const STATUS_TONE = { active: 'ok', grace: 'warn', expired: 'danger', suspended: 'neutral' };
function statusBadge(status, attrs) { return badge(labelize(status), STATUS_TONE[status] || 'neutral', attrs); }

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `Request failed (HTTP ${status})`);
    this.status = status;
    this.problem = problem;
  }
}

async function api(path, { method = 'GET', body, query } = {}) {
  const url = new URL(API + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
  }
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') {
    headers['X-CSRF-Token'] = (state.me && state.me.csrf_token) || '';
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(url, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = res.headers.get('content-type') || '';
  const data = res.status === 204 ? null
    : type.includes('json') ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) {
    const err = new ApiError(res.status, data && typeof data === 'object' ? data : null);
    if (res.status === 401) { state.me = null; renderSignIn(); }
    throw err;
  }
  return data;
}

const tenantPath = (slug, rest = '') => `/tenants/${encodeURIComponent(slug)}${rest}`;

// ---------------------------------------------------------------- alerts & status

function showError(err) {
  if (err instanceof ApiError && err.status === 401) return; // sign-in card already shown
  const alert = $('alert');
  const msg = err instanceof Error ? err.message : String(err);
  replace(alert,
    h('span', { class: 'alert-text' }, msg),
    h('button', { type: 'button', class: 'btn btn-ghost btn-sm', 'aria-label': 'Dismiss message', onclick: clearError }, 'Dismiss'));
  alert.hidden = false;
}

function clearError() { const a = $('alert'); a.hidden = true; a.replaceChildren(); }

function announce(text) {
  const el = $('status');
  el.textContent = '';
  setTimeout(() => { el.textContent = text; }, 30);
}

// Small inline notice inside a page (e.g. "Saved").
function notice(text, tone = 'info') { return h('p', { class: ['notice', `notice-${tone}`], role: 'status' }, text); }

// ---------------------------------------------------------------- layout

function renderChrome(route) {
  const me = state.me;
  const globalNav = $('global-nav');
  const userSlot = $('user-slot');
  replace(globalNav);
  replace(userSlot);
  if (!me) return renderTenantNav(null);

  const isHome = route.name === 'home';
  replace(globalNav,
    h('a', { href: '#/', 'aria-current': isHome ? 'page' : null }, me.operator ? 'Tenants' : 'My tenants'),
    me.operator ? h('a', { href: '#/plans', 'aria-current': route.name === 'plans' ? 'page' : null }, 'Plans') : null);

  const role = me.operator ? 'Operator' : 'Tenant admin';
  replace(userSlot, h('div', { class: 'user-menu', testid: 'user-menu' },
    h('div', { class: 'user-id' },
      h('span', { class: 'user-name' }, me.name || me.subject),
      h('span', { class: 'user-email' }, me.email || me.subject)),
    badge(role, me.operator ? 'accent' : 'neutral', { class: 'badge role-badge' }),
    h('form', { method: 'post', action: '/admin/logout', class: 'signout' },
      h('input', { type: 'hidden', name: 'csrf', value: me.csrf_token || '' }),
      h('button', { type: 'submit', class: 'btn btn-ghost btn-sm' }, 'Sign out'))));
  renderTenantNav(route.slug ? route : null);
}

const TABS = [
  ['dashboard', 'Dashboard', ''], ['users', 'Users', '/users'], ['audit', 'Audit', '/audit'],
  ['tokens', 'Tokens', '/tokens'], ['license', 'License', '/license'],
];

function renderTenantNav(route) {
  const nav = $('tenant-nav');
  if (!route) { nav.hidden = true; nav.replaceChildren(); return; }
  const name = state.tenantNames.get(route.slug) || route.slug;
  if (!state.tenantNames.has(route.slug) && route.name !== 'dashboard') {
    state.tenantNames.set(route.slug, route.slug); // fetch once; the dashboard loads it anyway
    api(tenantPath(route.slug)).then((t) => {
      state.tenantNames.set(route.slug, t.name);
      if (parseRoute().slug === route.slug) renderTenantNav(parseRoute());
    }).catch(() => {});
  }
  replace(nav, h('div', { class: 'tenant-nav-inner' },
    h('span', { class: 'tenant-name' }, h('span', { class: 'muted' }, 'Tenant '), h('strong', {}, name)),
    h('ul', { class: 'tabs' }, TABS.map(([key, label, suffix]) => h('li', {},
      h('a', {
        href: `#/t/${encodeURIComponent(route.slug)}${suffix}`, testid: `tab-${key}`, class: 'tab',
        'aria-current': route.name === key ? 'page' : null,
      }, label))))));
  nav.hidden = false;
}

function pageHeader(title, subtitle, ...actions) {
  return h('div', { class: 'page-header' },
    h('div', {},
      h('h1', { tabindex: '-1', class: 'page-title' }, title),
      subtitle ? h('p', { class: 'page-subtitle' }, subtitle) : null),
    actions.length ? h('div', { class: 'page-actions' }, actions) : null);
}

function card(title, ...children) {
  return h('section', { class: 'card' }, title ? h('h2', { class: 'card-title' }, title) : null, children);
}

function loadMoreButton(label, onclick) {
  return h('button', { type: 'button', class: 'btn btn-secondary load-more', onclick }, label || 'Load more');
}

// A table whose cells carry data-label (from the headers) so it can stack into cards on small screens.
function dataTable(testid, caption, headers, tbody) {
  const label = (tr) => [...tr.children].forEach((td, i) => {
    if (td.tagName === 'TD' && !td.hasAttribute('colspan')) td.setAttribute('data-label', headers[i]);
  });
  [...tbody.children].forEach(label);
  new MutationObserver((muts) => muts.forEach((m) => m.addedNodes.forEach((n) => n.tagName === 'TR' && label(n))))
    .observe(tbody, { childList: true });
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table table-stack', testid },
    h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, headers.map((c) => h('th', { scope: 'col' }, c)))),
    tbody));
}

// A cursor-paged list: calls fetchPage(cursor) → {items,next_cursor}, renders each item via addItems.
function pager(container, fetchPage, addItems, emptyText) {
  const footer = h('div', { class: 'pager' });
  let loaded = 0;
  async function load(cursor) {
    replace(footer, h('span', { class: 'muted' }, 'Loading…'));
    try {
      const page = await fetchPage(cursor);
      loaded += page.items.length;
      addItems(page.items);
      replace(footer,
        loaded === 0 ? h('p', { class: 'empty' }, emptyText) : null,
        page.next_cursor ? loadMoreButton('Load more', () => load(page.next_cursor)) : null);
      if (cursor) announce(`Loaded ${page.items.length} more`);
    } catch (err) {
      replace(footer, loadMoreButton('Retry', () => load(cursor)));
      showError(err);
    }
  }
  container.after(footer);
  load(null);
  return footer;
}

// ---------------------------------------------------------------- sign-in

function renderSignIn() {
  renderChrome({ name: 'signin' });
  const returnTo = encodeURIComponent(location.pathname + location.hash);
  replace($('view'), h('div', { class: 'signin-wrap' },
    h('section', { class: 'card signin-card', 'aria-labelledby': 'signin-title' },
      brandMark(48),
      h('h1', { id: 'signin-title', class: 'page-title', tabindex: '-1' }, 'Sign in to seatbridge'),
      h('p', { class: 'muted' }, 'Manage seats, licenses and SCIM provisioning for your organisation.'),
      h('a', { class: 'btn btn-primary btn-block', href: `/admin/login?return_to=${returnTo}`, testid: 'signin-link' },
        'Sign in with your identity provider'))));
}

function brandMark(size) {
  return s('svg', { class: 'signin-mark', viewBox: '0 0 32 32', width: size, height: size, 'aria-hidden': 'true', focusable: 'false' },
    s('rect', { width: 32, height: 32, rx: 8, fill: 'currentColor' }),
    s('path', { d: 'M9 20h14M9 14h14', stroke: '#fff', 'stroke-width': 3, 'stroke-linecap': 'round' }));
}

// ---------------------------------------------------------------- tenant list

async function renderHome(view, seq) {
  const me = state.me;
  if (!me.operator) {
    const tenants = me.tenants || [];
    if (tenants.length === 1) { location.replace(`#/t/${encodeURIComponent(tenants[0])}`); return; }
    replace(view, pageHeader('Your tenants', 'Choose a tenant to manage.'),
      tenants.length === 0
        ? card(null, h('p', { class: 'empty' }, 'Your account is not an administrator of any tenant yet.'))
        : h('ul', { class: 'tenant-grid' }, tenants.map((slug) => h('li', {},
          h('a', { class: 'card tenant-card', href: `#/t/${encodeURIComponent(slug)}` },
            h('span', { class: 'tenant-card-name' }, slug), h('span', { class: 'muted' }, 'Open dashboard →'))))));
    return;
  }
  const tbody = h('tbody');
  const wrap = dataTable('tenants-table', 'Tenants', ['Tenant', 'Plan', 'Seats', 'Status', 'Expiry'], tbody);
  replace(view, pageHeader('Tenants', 'All organisations served by this seatbridge.'),
    newTenantForm(), h('div', { class: 'card card-flush' }, wrap));
  pager(wrap, (cursor) => api('/tenants', { query: { cursor, limit: 50 } }), (items) => {
    if (seq !== routeSeq) return;
    for (const t of items) {
      state.tenantNames.set(t.slug, t.name);
      tbody.append(tenantRow(t));
    }
  }, 'No tenants yet.');
}

function tenantRow(t) {
  return h('tr', { 'data-slug': t.slug },
    h('td', {}, h('a', { href: `#/t/${encodeURIComponent(t.slug)}`, class: 'strong-link' }, t.name),
      h('div', { class: 'muted small' }, t.slug)),
    h('td', {}, t.plan), h('td', { class: 'num' }, t.seats ?? 'unlimited'),
    h('td', {}, statusBadge(t.status)), h('td', {}, expiryText(t.expires_at)));
}

function newTenantForm() {
  const form = h('form', { class: 'form-grid' },
    field('Slug', h('input', { name: 'slug', required: true, pattern: '[a-z0-9][a-z0-9\\-]*', autocomplete: 'off' }), 'Lowercase letters, digits and dashes.'),
    field('Name', h('input', { name: 'name', required: true, autocomplete: 'off' })),
    field('Plan', planSelect('plan')),
    field('Seats', h('input', { name: 'seats', type: 'number', min: 0, inputmode: 'numeric' }), 'Empty = plan default.'),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create tenant')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    const body = { slug: fd.get('slug').trim(), name: fd.get('name').trim(), plan: fd.get('plan') };
    if (fd.get('seats') !== '') body.seats = Number(fd.get('seats'));
    try {
      const t = await api('/tenants', { method: 'POST', body });
      clearError();
      location.hash = `#/t/${encodeURIComponent(t.slug)}`;
    } catch (err) { showError(err); }
  });
  return h('details', { class: 'card disclosure' }, h('summary', {}, 'New tenant'), form);
}

let fieldSeq = 0;
function field(label, control, hint) {
  const id = control.id || `f${++fieldSeq}`;
  control.id = id;
  if (!control.classList.contains('checkbox')) control.classList.add('input');
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) control.setAttribute('aria-describedby', hintId);
  return h('div', { class: 'field' },
    h('label', { for: id }, label), control,
    hint ? h('span', { class: 'hint', id: hintId }, hint) : null);
}

async function loadPlans() {
  if (!state.plans) state.plans = await api('/plans');
  return state.plans;
}

function planSelect(name, current) {
  const sel = h('select', { name, required: true }, current ? h('option', { value: current }, current) : null);
  loadPlans().then((plans) => {
    const names = plans.map((p) => p.name);
    if (current && !names.includes(current)) names.unshift(current);
    replace(sel, names.map((n) => h('option', { value: n, selected: n === current }, n)));
  }).catch(showError);
  return sel;
}

// ---------------------------------------------------------------- dashboard

async function renderDashboard(view, seq, slug) {
  const [t, history] = await Promise.all([
    api(tenantPath(slug)),
    api(tenantPath(slug, '/seats/history'), { query: { days: 30 } }).catch(() => ({ items: [] })),
  ]);
  if (seq !== routeSeq) return;
  state.tenantNames.set(slug, t.name);
  renderTenantNav({ name: 'dashboard', slug });
  const lic = t.license;
  replace(view,
    pageHeader(t.name, `Dashboard · ${slug}`),
    h('div', { class: 'grid grid-summary' },
      licenseSummaryCard(lic), usersCard(t.users, slug), idpCard(t.idp)),
    h('h2', { class: 'section-title' }, 'Seat pools'),
    h('div', { class: 'grid grid-pools' }, t.pools.map(poolCard)),
    usageCard(t.pools, history.items || []),
    t.features && t.features.length
      ? card('Features', h('ul', { class: 'chips' }, t.features.map((f) => h('li', { class: 'chip' }, f)))) : null);
}

function licenseSummaryCard(lic) {
  const tone = lic.status === 'active' ? null : lic.status === 'grace' ? 'warn' : 'danger';
  return h('section', { class: ['card', 'stat-card', tone && `card-${tone}`] },
    h('h2', { class: 'card-title' }, 'License'),
    h('div', { class: 'stat-row' }, statusBadge(lic.status, { testid: 'license-status' }),
      h('span', { class: 'stat-plan' }, `${labelize(lic.plan)} plan`)),
    h('p', { class: 'stat-sub', testid: 'expiry' }, timeEl(lic.expires_at, expiryText(lic.expires_at))),
    lic.status === 'grace' ? h('p', { class: 'small warn-text' }, `Grace period: ${lic.grace_days} days after expiry.`) : null);
}

function usersCard(u, slug) {
  return h('section', { class: 'card stat-card' },
    h('h2', { class: 'card-title' }, 'Users'),
    h('p', { class: 'stat-big' }, numFmt.format(u.total), h('span', { class: 'stat-unit' }, ' total')),
    h('p', { class: 'stat-sub' }, `${numFmt.format(u.active)} active · ${numFmt.format(u.entitled)} with a seat`),
    h('a', { href: `#/t/${encodeURIComponent(slug)}/users`, class: 'small' }, 'View users →'));
}

function idpCard(idp) {
  return h('section', { class: 'card stat-card', testid: 'idp' },
    h('h2', { class: 'card-title' }, 'Identity provider'),
    idp
      ? [h('p', { class: 'stat-plan' }, `IdP: ${idpName(idp)}`),
        h('p', { class: 'stat-sub' }, 'Last push ', timeEl(idp.last_seen_at)),
        idp.user_agent && idp.user_agent !== idpName(idp) ? h('p', { class: 'small muted truncate', title: idp.user_agent }, idp.user_agent) : null]
      : h('p', { class: 'stat-sub' }, 'No IdP has pushed yet'));
}

function poolCard(pool) {
  const { seat_type: type, in_use: used, limit } = pool;
  const ratio = limit ? used / limit : limit === 0 ? 1 : 0;
  const full = limit !== null && used >= limit;
  const warn = limit !== null && used >= 0.9 * limit;
  const r = 42, c = 2 * Math.PI * r;
  const arc = Math.min(ratio, 1) * c;
  const label = limit === null ? `${used} seats in use, unlimited` : `${used} of ${limit} seats in use`;
  return h('section', { class: ['card', 'pool', warn && 'pool-warn', full && 'pool-full'], testid: 'pool-gauge', 'data-seat-type': type },
    h('h3', { class: 'card-title' }, `${labelize(type)} seats`),
    h('div', { class: 'pool-body' },
      s('svg', { class: 'ring', viewBox: '0 0 100 100', width: 104, height: 104, role: 'img', 'aria-label': label },
        s('circle', { class: 'ring-track', cx: 50, cy: 50, r, fill: 'none', 'stroke-width': 10 }),
        limit === null ? null : s('circle', {
          class: 'ring-value', cx: 50, cy: 50, r, fill: 'none', 'stroke-width': 10, 'stroke-linecap': 'round',
          'stroke-dasharray': `${arc} ${c}`, transform: 'rotate(-90 50 50)',
        }),
        s('text', { x: 50, y: 56, 'text-anchor': 'middle', class: 'ring-text' },
          limit === null ? '∞' : `${Math.round(ratio * 100)}%`)),
      h('div', { class: 'pool-numbers' },
        h('p', { class: 'pool-count' },
          h('span', { testid: 'pool-in-use', class: 'pool-in-use' }, used), h('span', { class: 'muted' }, ' / '),
          h('span', { testid: 'pool-limit', class: ['pool-limit', limit === null && 'pool-limit-unlimited'] }, limit === null ? 'unlimited' : limit)),
        h('p', { class: 'muted small' }, 'seats in use'),
        pool.waiting ? h('p', { class: 'small' }, `${pool.waiting} waiting for a seat`) : null)),
    warn ? h('p', { class: 'pool-warning' }, h('span', { 'aria-hidden': 'true' }, '⚠ '),
      full ? 'Pool is full — new users will not get a seat.' : `Almost full: ${limit - used} seat${limit - used === 1 ? '' : 's'} left.`) : null);
}

function usageCard(pools, items) {
  const types = [...new Set([...pools.map((p) => p.seat_type), ...items.map((i) => i.seat_type)])];
  const chartSlot = h('div', { class: 'chart-slot' });
  let type = types[0] || 'default';
  let width = 0;
  const draw = () => replace(chartSlot, usageChart(type, items.filter((i) => i.seat_type === type), width || 640));
  // Redraw at the real pixel width so axis text stays crisp and un-scaled.
  new ResizeObserver(([entry]) => {
    const w = Math.round(entry.contentRect.width);
    if (w && Math.abs(w - width) > 4) { width = w; draw(); }
  }).observe(chartSlot);
  const picker = types.length > 1 ? field('Seat pool', h('select', { onchange: (e) => { type = e.target.value; draw(); } },
    types.map((t) => h('option', { value: t }, labelize(t))))) : null;
  return h('section', { class: 'card' },
    h('div', { class: 'card-head' }, h('h2', { class: 'card-title' }, 'Seat usage, last 30 days'), picker),
    chartSlot);
}

function niceMax(v) {
  if (v <= 5) return 5;
  const mag = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= v) return m * mag;
  return 10 * mag;
}

function usageChart(type, points, W) {
  const id = `chart-${type.replace(/[^a-z0-9_-]/gi, '')}`;
  const fig = h('figure', { class: 'chart', testid: 'usage-chart', 'data-seat-type': type });
  if (points.length === 0) {
    append(fig, h('p', { class: 'empty' }, 'No usage history yet.'));
    return fig;
  }
  const H = 220, L = 36, R = 12, T = 12, B = 30;
  const max = niceMax(Math.max(1, ...points.map((p) => Math.max(p.in_use, p.limit ?? 0))));
  const x = (i) => L + (points.length === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (points.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const line = (vals) => vals.map((v, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join('');
  const stepLine = (vals) => vals.map((v, i) => (i ? `H${x(i).toFixed(1)}V${y(v).toFixed(1)}` : `M${x(0).toFixed(1)},${y(v).toFixed(1)}`)).join('');
  const inUse = points.map((p) => p.in_use);
  const area = `${line(inUse)}L${x(points.length - 1).toFixed(1)},${y(0)}L${x(0).toFixed(1)},${y(0)}Z`;
  const hasLimit = points.some((p) => p.limit !== null && p.limit !== undefined);
  const first = points[0].day, last = points[points.length - 1].day;
  const dayLabel = (d) => shortDayFmt.format(new Date(`${d}T00:00:00Z`));
  const ticks = [0, max / 2, max];
  const xTicks = [...new Set([0, Math.floor((points.length - 1) / 2), points.length - 1])];

  const svgEl = s('svg', { class: 'chart-svg', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-labelledby': `${id}-t ${id}-d` },
    s('title', { id: `${id}-t` }, `${labelize(type)} seats in use and limit, ${dayLabel(first)} to ${dayLabel(last)}`),
    s('desc', { id: `${id}-d` }, `Latest: ${inUse[inUse.length - 1]} in use` +
      (hasLimit ? ` of ${points[points.length - 1].limit ?? 'unlimited'}` : ', unlimited') +
      `. Peak ${Math.max(...inUse)}. A data table follows.`),
    ticks.map((v) => s('g', { class: 'chart-grid' },
      s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      s('text', { x: L - 8, y: y(v) + 4, 'text-anchor': 'end', class: 'chart-axis' }, numFmt.format(v)))),
    xTicks.map((i) => s('text', { x: x(i), y: H - 10, class: 'chart-axis',
      'text-anchor': i === 0 ? 'start' : i === points.length - 1 ? 'end' : 'middle' }, dayLabel(points[i].day))),
    s('path', { class: 'chart-area', d: area }),
    s('path', { class: 'chart-line', d: line(inUse), fill: 'none' }),
    hasLimit ? s('path', { class: 'chart-limit', d: stepLine(points.map((p) => p.limit ?? max)), fill: 'none' }) : null,
    s('circle', { class: 'chart-dot', cx: x(points.length - 1), cy: y(inUse[inUse.length - 1]), r: 4 }));

  const legend = h('ul', { class: 'legend', 'aria-hidden': 'true' },
    h('li', {}, h('span', { class: 'swatch swatch-use' }), 'In use'),
    hasLimit ? h('li', {}, h('span', { class: 'swatch swatch-limit' }), 'Limit') : null);

  const table = h('div', { class: 'visually-hidden' }, h('table', {},
    h('caption', {}, `${labelize(type)} seat usage by day`),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Day'), h('th', { scope: 'col' }, 'In use'), h('th', { scope: 'col' }, 'Limit'))),
    h('tbody', {}, points.map((p) => h('tr', {}, h('th', { scope: 'row' }, p.day), h('td', {}, p.in_use),
      h('td', {}, p.limit ?? 'unlimited'))))));
  append(fig, svgEl, legend, table);
  return fig;
}

// ---------------------------------------------------------------- users

const USER_STATUSES = ['all', 'active', 'inactive', 'entitled', 'waiting'];

async function renderUsers(view, seq, slug) {
  let debounce = 0;
  const q = h('input', { type: 'search', name: 'q', placeholder: 'Name or email', autocomplete: 'off', testid: 'users-search' });
  const status = h('select', { name: 'status', testid: 'users-status' },
    USER_STATUSES.map((v) => h('option', { value: v }, labelize(v))));
  const results = h('div', { class: 'results' });
  const search = () => { clearTimeout(debounce); loadUsers(results, seq, slug, q.value.trim(), status.value); };
  q.addEventListener('input', () => { clearTimeout(debounce); debounce = setTimeout(search, 300); });
  status.addEventListener('change', search);
  const form = h('form', { class: 'toolbar', role: 'search', onsubmit: (e) => { e.preventDefault(); search(); } },
    field('Search users', q), field('Status', status),
    h('div', { class: 'field field-button' }, h('button', { type: 'submit', class: 'btn btn-secondary' }, 'Search')));
  replace(view, pageHeader('Users', 'Users provisioned by your identity provider and their seats.'), form, results);
  search();
}

function loadUsers(results, seq, slug, q, status) {
  const tbody = h('tbody');
  const wrap = dataTable('users-table', 'Users', ['User', 'Account', 'Seat', 'Updated', 'Actions'], tbody);
  replace(results, h('div', { class: 'card card-flush' }, wrap));
  pager(wrap, (cursor) => api(tenantPath(slug, '/users'), { query: { q, status, cursor, limit: 50 } }),
    (items) => { if (seq === routeSeq) tbody.append(...items.map((u) => userRow(slug, u))); },
    q || status !== 'all' ? 'No users match.' : 'No users have been provisioned yet.');
}

function seatCell(u) {
  const waiting = !u.entitled && u.active && u.entitlement_reason !== 'admin_deprovisioned';
  return h('div', { class: 'cell-stack' },
    u.entitled ? badge('Seat', 'ok') : badge(waiting ? 'Waiting' : 'No seat', waiting ? 'warn' : 'neutral'),
    h('div', { class: 'muted small' }, labelize(u.entitled ? u.seat_type : u.entitlement_reason || u.seat_type)));
}

function userRow(slug, u) {
  const action = u.entitled ? 'deprovision' : 'reactivate';
  const btn = h('button', {
    type: 'button', class: ['btn', 'btn-sm', u.entitled ? 'btn-danger-outline' : 'btn-secondary'],
    testid: `user-${action}`, 'aria-label': `${labelize(action)} ${u.userName}`,
  }, labelize(action));
  const row = h('tr', { testid: 'user-row', 'data-user-id': u.id },
    h('td', {}, h('div', { class: 'strong' }, u.displayName || u.userName), h('div', { class: 'muted small' }, u.userName)),
    h('td', {}, badge(u.active ? 'Active' : 'Inactive', u.active ? 'ok' : 'neutral')),
    h('td', {}, seatCell(u)),
    h('td', {}, timeEl(u.updated)),
    h('td', { class: 'actions' }, btn));
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      const updated = await api(tenantPath(slug, `/users/${encodeURIComponent(u.id)}/${action}`), { method: 'POST' });
      clearError();
      const fresh = userRow(slug, updated);
      row.replaceWith(fresh);
      fresh.querySelector('button').focus();
      announce(`${updated.userName}: ${action === 'deprovision' ? 'seat removed' : 'reactivated'}`);
    } catch (err) { btn.disabled = false; showError(err); }
  });
  return row;
}

// ---------------------------------------------------------------- audit

async function renderAudit(view, seq, slug) {
  const refused = h('input', { type: 'checkbox', class: 'checkbox', id: 'refused-only', testid: 'audit-refused-only' });
  const verifyOut = h('span', { class: 'verify-out', 'aria-live': 'polite' });
  const verifyBtn = h('button', { type: 'button', class: 'btn btn-secondary', testid: 'audit-verify' }, 'Verify chain');
  verifyBtn.addEventListener('click', async () => {
    verifyBtn.disabled = true;
    replace(verifyOut, h('span', { class: 'muted' }, 'Verifying…'));
    try {
      const v = await api(tenantPath(slug, '/audit/verify'));
      replace(verifyOut, v.ok
        ? badge(`Chain intact · ${numFmt.format(v.entries)} entries`, 'ok', { testid: 'verify-result' })
        : badge(`Chain broken at entry #${v.broken_at}`, 'danger', { testid: 'verify-result' }));
    } catch (err) { replace(verifyOut); showError(err); } finally { verifyBtn.disabled = false; }
  });
  const exportLink = h('a', { class: 'btn btn-secondary', href: API + tenantPath(slug, '/audit/export'),
    download: `${slug}-audit.ndjson`, testid: 'audit-export' }, 'Export');
  const list = h('div');
  const load = () => {
    const ol = h('ol', { class: 'timeline' });
    replace(list, ol);
    pager(ol, (cursor) => api(tenantPath(slug, '/audit'), { query: { cursor, limit: 50, refused: refused.checked ? 'true' : null } }),
      (items) => { if (seq === routeSeq) ol.append(...items.map(auditEntry)); },
      refused.checked ? 'No refused provisioning requests.' : 'No audit entries yet.');
  };
  refused.addEventListener('change', load);
  replace(view,
    pageHeader('Audit log', 'A tamper-evident, hash-chained record of everything that changed.', verifyBtn, exportLink),
    h('div', { class: 'toolbar' },
      h('div', { class: 'check' }, refused, h('label', { for: 'refused-only' }, 'Refused only')),
      verifyOut),
    list);
  load();
}

function auditEntry(e) {
  const isRefused = e.action === 'provisioning.refused';
  return h('li', { class: ['timeline-item', isRefused && 'is-refused'], testid: 'audit-entry', 'data-seq': e.seq, 'data-action': e.action },
    h('div', { class: 'timeline-dot', 'aria-hidden': 'true' }),
    h('div', { class: 'timeline-body' },
      h('div', { class: 'timeline-head' },
        h('code', { class: ['action', isRefused && 'action-refused'] }, e.action),
        e.target ? h('span', { class: 'target' }, e.target) : null,
        h('span', { class: 'muted small timeline-time' }, timeEl(e.at), ` · #${e.seq}`)),
      h('p', { class: 'small muted' }, `by ${e.actor}`),
      isRefused ? refusalDetails(e) : changeDetails(e)));
}

function dl(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function refusalDetails(e) {
  const a = e.after || {};
  const r = e.request || {};
  return h('details', { class: 'why' },
    h('summary', {}, 'Why was this refused?'),
    dl([
      ['Code', a.code ? h('code', {}, a.code) : null],
      ['Detail', a.detail],
      ['Refused', a.refused],
      ['Request', r.method ? h('code', {}, `${r.method} ${r.path || ''}`) : null],
      ['IdP', r.idp ? (IDP_NAMES[r.idp] || r.idp) : null],
      ['Client', r.user_agent],
      ['Operation', r.op],
      ['Request ID', e.request_id ? h('code', {}, e.request_id) : null],
    ]));
}

function changeDetails(e) {
  if (!e.before && !e.after) return null;
  const pre = (label, v) => (v ? h('div', {}, h('h4', { class: 'small muted' }, label), h('pre', { class: 'json' }, JSON.stringify(v, null, 2))) : null);
  return h('details', { class: 'why' }, h('summary', {}, 'Show change'),
    h('div', { class: 'change' }, pre('Before', e.before), pre('After', e.after)),
    e.request_id ? h('p', { class: 'small muted' }, `Request ID: ${e.request_id}`) : null);
}

// ---------------------------------------------------------------- tokens

async function renderTokens(view, seq, slug) {
  const tbody = h('tbody');
  const secretSlot = h('div');
  const name = h('input', { name: 'name', required: true, maxlength: 100, autocomplete: 'off', testid: 'token-create-name', placeholder: 'e.g. okta' });
  const form = h('form', { class: 'toolbar' }, field('Token name', name, 'Use the name of the IdP that will use it.'),
    h('div', { class: 'field field-button' },
      h('button', { type: 'submit', class: 'btn btn-primary', testid: 'token-create-submit' }, 'Create token')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const created = await api(tenantPath(slug, '/tokens'), { method: 'POST', body: { name: name.value.trim() } });
      clearError();
      name.value = '';
      replace(secretSlot, secretPanel(created));
      secretSlot.querySelector('input').focus();
      await reload();
    } catch (err) { showError(err); }
  });
  const reload = async () => {
    const { items } = await api(tenantPath(slug, '/tokens'));
    if (seq !== routeSeq) return;
    replace(tbody, items.length ? items.map((t) => tokenRow(slug, t, reload))
      : h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No tokens yet. Create one for your IdP below.')));
  };
  replace(view,
    pageHeader('SCIM tokens', 'Bearer tokens your identity provider uses to push users to seatbridge.'),
    card('Create a token', form, secretSlot),
    h('div', { class: 'card card-flush' }, dataTable('tokens-table', 'SCIM tokens', ['Name', 'Created', 'Last used', 'Status', 'Actions'], tbody)));
  await reload();
}

function secretPanel(created) {
  const input = h('input', { type: 'text', readonly: true, value: created.token, class: 'input mono', id: 'token-secret',
    testid: 'token-secret', 'data-token-id': created.id, spellcheck: 'false', 'aria-describedby': 'token-secret-warn' });
  input.addEventListener('focus', () => input.select());
  const copied = h('span', { class: 'small', 'aria-live': 'polite' });
  const copy = h('button', { type: 'button', class: 'btn btn-secondary', testid: 'token-copy' }, 'Copy');
  copy.addEventListener('click', async () => {
    try { await navigator.clipboard.writeText(created.token); } catch {
      input.select(); document.execCommand('copy');
    }
    copied.textContent = 'Copied to clipboard';
  });
  return h('div', { class: 'secret-panel', role: 'region', 'aria-label': 'New token' },
    h('p', { class: 'secret-warn', id: 'token-secret-warn' }, h('strong', {}, `Token “${created.name}” created. `),
      'Copy it now — it will not be shown again.'),
    h('label', { for: 'token-secret', class: 'visually-hidden' }, 'New token value'),
    h('div', { class: 'copy-row' }, input, copy), copied);
}

function tokenRow(slug, t, reload) {
  const revoked = Boolean(t.revoked_at);
  const actions = h('td', { class: 'actions' });
  const row = h('tr', { testid: 'token-row', 'data-token-id': t.id, 'data-revoked': String(revoked), class: revoked ? 'is-revoked' : null },
    h('td', { class: 'strong' }, t.name), h('td', {}, timeEl(t.created_at)), h('td', {}, timeEl(t.last_used_at)),
    h('td', {}, revoked ? badge('Revoked', 'neutral', { title: fmtDateTime(t.revoked_at) }) : badge('Active', 'ok')),
    actions);
  if (revoked) return row;
  const showButton = () => {
    const btn = h('button', { type: 'button', class: 'btn btn-sm btn-danger-outline', testid: 'token-revoke',
      'aria-label': `Revoke token ${t.name}` }, 'Revoke');
    btn.addEventListener('click', () => showConfirm());
    replace(actions, btn);
    return btn;
  };
  const showConfirm = () => {
    document.querySelectorAll('[data-confirm-cancel]').forEach((b) => b.click()); // one confirm at a time
    const yes = h('button', { type: 'button', class: 'btn btn-sm btn-danger', testid: 'confirm-yes' }, 'Yes, revoke');
    const no = h('button', { type: 'button', class: 'btn btn-sm btn-ghost', testid: 'confirm-no', 'data-confirm-cancel': '' }, 'Cancel');
    no.addEventListener('click', () => showButton().focus());
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try {
        await api(tenantPath(slug, `/tokens/${encodeURIComponent(t.id)}`), { method: 'DELETE' });
        clearError();
        announce(`Token ${t.name} revoked`);
        await reload();
      } catch (err) { yes.disabled = false; showError(err); }
    });
    replace(actions, h('div', { class: 'confirm', role: 'group', 'aria-label': `Confirm revoking ${t.name}` },
      h('span', { class: 'small' }, 'Revoke? IdP pushes using it will fail.'), yes, no));
    no.focus();
  };
  showButton();
  return row;
}

// ---------------------------------------------------------------- license

const POLICIES = {
  block_new: 'Block new users',
  deactivate_newest: 'Unseat newest users',
};

async function renderLicense(view, seq, slug) {
  const lic = await api(tenantPath(slug, '/license'));
  if (seq !== routeSeq) return;
  const current = card('Current license', dl([
    ['Status', statusBadge(lic.status, { testid: 'license-status' })],
    ['Plan', labelize(lic.plan)],
    ['Seats', lic.seats ?? 'unlimited'],
    ['Starts', fmtDate(lic.starts_at)],
    ['Expires', h('span', { testid: 'expiry' }, lic.expires_at ? `${fmtDate(lic.expires_at)} (${expiryText(lic.expires_at)})` : 'Never (perpetual)')],
    ['When over the limit', POLICIES[lic.policy] || lic.policy],
    ['Usage cap', lic.usage_cap !== null && lic.usage_cap !== undefined ? `${lic.usage_cap} per ${lic.usage_period}` : null],
    ['Version', lic.version],
  ]));
  replace(view, pageHeader('License', state.me.operator ? 'Review and change the license of this tenant.' : 'The license your organisation holds.'),
    h('div', { class: 'grid grid-license' }, current, state.me.operator ? licenseEditor(slug, lic) : null));
}

function licenseEditor(slug, lic) {
  const plan = planSelect('plan', lic.plan);
  const seats = h('input', { type: 'number', name: 'seats', min: 0, step: 1, inputmode: 'numeric', value: lic.seats ?? '', testid: 'license-seats' });
  const expires = h('input', { type: 'date', name: 'expires_at', value: lic.expires_at ? lic.expires_at.slice(0, 10) : '', testid: 'license-expires' });
  const policy = h('select', { name: 'policy', testid: 'license-policy' },
    Object.entries(POLICIES).map(([v, label]) => h('option', { value: v, selected: v === lic.policy }, label)));
  const previewBtn = h('button', { type: 'submit', class: 'btn btn-secondary', testid: 'license-preview' }, 'Preview');
  const applyBtn = h('button', { type: 'button', class: 'btn btn-primary', testid: 'license-apply', disabled: true }, 'Apply');
  const previewSlot = h('div', { 'aria-live': 'polite' });
  let previewed = null; // JSON of the body that was previewed

  const changes = () => {
    const body = {};
    if (plan.value && plan.value !== lic.plan) body.plan = plan.value;
    const seatsVal = seats.value === '' ? null : Number(seats.value);
    if (seatsVal !== (lic.seats ?? null)) body.seats = seatsVal;
    const oldDay = lic.expires_at ? lic.expires_at.slice(0, 10) : '';
    if (expires.value !== oldDay) body.expires_at = expires.value ? `${expires.value}T23:59:59Z` : null;
    if (policy.value !== lic.policy) body.policy = policy.value;
    return body;
  };
  const invalidate = () => { previewed = null; applyBtn.disabled = true; replace(previewSlot); };

  const form = h('form', { class: 'form-grid', testid: 'license-form' },
    field('Plan', plan), field('Seats', seats, 'Empty = unlimited.'),
    field('Expires on', expires, 'Last valid day (UTC). Empty = perpetual.'),
    field('When over the limit', policy),
    h('div', { class: 'form-actions' }, previewBtn, applyBtn));
  form.addEventListener('input', invalidate);
  form.addEventListener('change', invalidate);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = changes();
    if (Object.keys(body).length === 0) { replace(previewSlot, notice('Nothing to preview — the form matches the current license.')); return; }
    previewBtn.disabled = true;
    try {
      const res = await api(tenantPath(slug, '/license'), { method: 'PUT', query: { dry_run: 'true' }, body: { ...body, version: lic.version } });
      clearError();
      previewed = JSON.stringify(body);
      replace(previewSlot, previewPanel(lic, res));
      applyBtn.disabled = false;
      announce('Preview ready. Review it, then Apply.');
    } catch (err) { showError(err); } finally { previewBtn.disabled = false; }
  });

  applyBtn.addEventListener('click', async () => {
    const body = changes();
    if (previewed !== JSON.stringify(body)) { invalidate(); return; }
    applyBtn.disabled = true;
    try {
      const res = await api(tenantPath(slug, '/license'), { method: 'PUT', query: { dry_run: 'false' }, body: { ...body, version: lic.version } });
      clearError();
      announce(`License updated to version ${res.version}`);
      await renderLicense($('view'), routeSeq, slug);
      $('view').querySelector('.grid-license').after(notice(`License updated (version ${res.version}).`, 'ok'));
    } catch (err) {
      showError(err);
      if (err.status === 409) replace(previewSlot, notice('The license changed meanwhile. Reload the page and preview again.', 'warn'));
    }
  });

  return card('Change license', form, previewSlot);
}

function previewPanel(lic, res) {
  const fields = [['Plan', 'plan', labelize], ['Seats', 'seats', (v) => v ?? 'unlimited'],
    ['Expires', 'expires_at', (v) => (v ? fmtDate(v) : 'perpetual')], ['Status', 'status', labelize],
    ['When over the limit', 'policy', (v) => POLICIES[v] || v]];
  const diffs = fields.filter(([, k]) => (lic[k] ?? null) !== (res[k] ?? null));
  const userList = (items, testid, emptyText) => (items && items.length
    ? h('ul', { class: 'user-list', testid }, items.map((u) => h('li', {}, h('span', {}, u.user_name),
      u.reason ? h('span', { class: 'muted small' }, ` · ${labelize(u.reason)}`) : null)))
    : [h('ul', { class: 'user-list', testid }), h('p', { class: 'muted small' }, emptyText)]);
  const lose = (res.deentitled || []).length;
  return h('section', { class: ['preview', lose && 'preview-warn'], testid: 'preview-panel', 'aria-labelledby': 'preview-title' },
    h('h3', { id: 'preview-title', class: 'card-title' }, 'Preview — nothing has changed yet'),
    diffs.length
      ? h('table', { class: 'table table-compact' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'Now'), h('th', { scope: 'col' }, 'After'))),
        h('tbody', {}, diffs.map(([label, k, f]) => h('tr', {}, h('th', { scope: 'row' }, label),
          h('td', {}, String(f(lic[k]))), h('td', { class: 'strong' }, String(f(res[k])))))))
      : h('p', { class: 'muted' }, 'No visible change to the license terms.'),
    h('div', { class: 'preview-lists' },
      h('div', {}, h('h4', {}, `Lose a seat (${lose})`), userList(res.deentitled, 'preview-deentitled', 'Nobody loses a seat.')),
      h('div', {}, h('h4', {}, `Regain a seat (${(res.reentitled || []).length})`),
        userList(res.reentitled, 'preview-reentitled', 'Nobody regains a seat.'))),
    lose ? h('p', { class: 'pool-warning' }, `${lose} user${lose === 1 ? '' : 's'} will lose access when you apply.`) : null);
}

// ---------------------------------------------------------------- plans

async function renderPlans(view, seq) {
  if (!state.me.operator) throw new ApiError(403, { detail: 'Only operators can see the plan catalog.' });
  const plans = await loadPlans();
  if (seq !== routeSeq) return;
  const pools = (p) => Object.entries(p.seat_pools || {}).map(([k, v]) => `${k}: ${v ?? 'unlimited'}`).join(', ') || '—';
  replace(view, pageHeader('Plans', 'The plan catalog licenses are based on.'),
    h('div', { class: 'card card-flush' }, dataTable('plans-table', 'Plans',
      ['Plan', 'Default seats', 'Seat pools', 'Grace', 'Overage', 'Features'],
      h('tbody', {}, plans.map((p) => h('tr', {},
        h('td', { class: 'strong' }, p.name), h('td', { class: 'num' }, p.seats_default ?? 'unlimited'),
        h('td', {}, pools(p)), h('td', { class: 'nowrap' }, `${p.grace_days} days`), h('td', {}, `×${p.overage}`),
        h('td', {}, h('ul', { class: 'chips' }, (p.features || []).map((f) => h('li', { class: 'chip' }, f))))))))));
}

// ---------------------------------------------------------------- router

function parseRoute() {
  const parts = (location.hash.replace(/^#\/?/, '') || '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { name: 'home' };
  if (parts[0] === 'plans' && parts.length === 1) return { name: 'plans' };
  if (parts[0] === 't' && parts[1]) {
    const tab = parts[2] || 'dashboard';
    if (TABS.some(([k]) => k === tab) && parts.length <= 3) return { name: tab, slug: parts[1] };
  }
  return { name: 'notfound' };
}

const PAGES = {
  home: renderHome, plans: renderPlans, dashboard: renderDashboard, users: renderUsers,
  audit: renderAudit, tokens: renderTokens, license: renderLicense,
};

const TITLES = { home: 'Tenants', plans: 'Plans', dashboard: 'Dashboard', users: 'Users', audit: 'Audit', tokens: 'Tokens', license: 'License' };

async function route() {
  const seq = ++routeSeq;
  clearError();
  if (!state.me) {
    try { state.me = await api('/me'); } catch (err) {
      if (err.status !== 401) { renderChrome({ name: 'error' }); replace($('view')); showError(err); }
      return;
    }
  }
  if (seq !== routeSeq) return;
  const r = parseRoute();
  renderChrome(r);
  const view = $('view');
  document.title = `${TITLES[r.name] || 'Not found'}${r.slug ? ` · ${state.tenantNames.get(r.slug) || r.slug}` : ''} — seatbridge`;
  const page = PAGES[r.name];
  if (!page) { replace(view, pageHeader('Page not found', 'There is nothing at this address.'), h('a', { href: '#/' }, 'Back to start')); return; }
  replace(view, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  try {
    await page(view, seq, r.slug);
  } catch (err) {
    if (seq !== routeSeq || err.status === 401) return;
    const msg = err.status === 404 ? ['Not found', 'This tenant does not exist or you cannot see it.']
      : err.status === 403 ? ['Not allowed', 'Your account may not open this page.'] : ['Something went wrong', err.message];
    replace(view, pageHeader(msg[0], msg[1]), h('a', { href: '#/' }, 'Back to start'));
    if (err.status !== 404 && err.status !== 403) showError(err);
  }
  if (seq === routeSeq) {
    const title = view.querySelector('h1');
    if (title && document.activeElement === document.body) title.focus({ preventScroll: true });
  }
}

// The skip link moves focus without touching the hash, which the router owns.
document.querySelector('.skip-link')?.addEventListener('click', (e) => {
  e.preventDefault();
  document.getElementById('main')?.focus();
});
window.addEventListener('hashchange', () => { route(); });
route();
