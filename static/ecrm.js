/*! ecrm.js, the eCRM tracker: see ecrm.snippet.html */
((w, d) => {
  let V = '1.0.0', P = 'ecrm_', nav = navigator, loc = location, prev = w.ecrm;
  if (prev && prev.v) return;
  let me = d.currentScript || d.querySelector('script[src*="ecrm.js"]');
  let NUM = /^(price|quantity|position|value|revenue|total|subtotal|tax|shipping|discount)$/;
  let LEASE = 18e4; // a tab silent longer is gone: its events are adopted
  let opt = {}, cfg, key, url, Q, H, aid, uid, uh, off, dnt, started, skipped, busy, timer, mo;
  let attempt = 0, retryAt = 0, inflight = {}, beaconed = {}, pending = [], mem = {};
  let seen = new WeakMap(), ref = d.referrer, here = loc.href;

  let safe = f => function () { // never throws into the page
    try { return f.apply(this, arguments); } catch (e) {}
  };
  let now = () => Date.now();
  let iso = () => new Date().toISOString();
  let bool = v => v != null && v !== false && v !== 'false';
  let json = s => { try { let o = JSON.parse(s); return o && typeof o == 'object' ? o : {}; } catch (e) { return {}; } };

  let uuid = () => crypto.randomUUID ? crypto.randomUUID() : // randomUUID needs https
    '10000000-1000-4000-8000-100000000000'.replace(/[018]/g, c => (c ^ crypto.getRandomValues(new Uint8Array(1))[0] & 15 >> c / 4).toString(16));

  // localStorage, else memory
  let get = k => { try { return k in mem ? mem[k] : localStorage.getItem(k); } catch (e) { return null; } };
  let set = (k, v) => { try { localStorage.setItem(k, v); delete mem[k]; } catch (e) { mem[k] = '' + v; } };
  let del = k => { delete mem[k]; try { localStorage.removeItem(k); } catch (e) {} };
  let keys = () => { try { return Object.keys(localStorage).filter(k => !k.indexOf(P)); } catch (e) { return []; } };
  let cookie = (k, v, age) => {
    d.cookie = k + '=' + v + ';path=/;max-age=' + age + ';SameSite=Lax' + (loc.protocol == 'https:' ? ';Secure' : '');
  };
  let readCookie = k => (d.cookie.match('(^|;) ?' + k + '=([^;]*)') || [])[2];

  // no consent (if required), DNT or GPC: nothing sent or stored
  let ok = () => !off && !dnt && (!cfg.requireConsent || get(P + 'consent') == 1);

  // storage is the truth: other tabs may reset
  let ids = () => {
    aid = readCookie(P + 'aid') || get(P + 'aid') || uuid();
    uid = get(P + 'uid');
    uh = get(P + 'uh'); // the shop's signature of uid
    cookie(P + 'aid', aid, 31536000);
    set(P + 'aid', aid);
  };

  let pageProps = () => ({ path: loc.pathname, referrer: ref, search: loc.search, title: d.title, url: loc.href });
  let context = () => {
    let q = new URLSearchParams(loc.search), camp = {}, c = {
      page: pageProps(), userAgent: nav.userAgent, locale: nav.language,
      screen: { width: screen.width, height: screen.height, density: w.devicePixelRatio },
      library: { name: 'ecrm.js', version: V }
    };
    for (let [k, n] of [['source'], ['medium'], ['campaign', 'name'], ['term'], ['content']]) {
      if (q.get('utm_' + k)) camp[n || k] = q.get('utm_' + k);
    }
    if (Object.keys(camp).length) c.campaign = camp;
    return c;
  };

  // Queue: {d: dropped, e: events} per tab, written by that tab only
  let load = k => {
    let r = json(get(k || Q));
    return Array.isArray(r.e) && r.d >= 0 ? r : { d: 0, e: [] };
  };
  let save = r => {
    if (!ok()) return;
    while (r.e.length > cfg.maxQueue) { r.e.shift(); r.d++; }
    r.e.length || r.d ? set(Q, JSON.stringify(r)) : del(Q);
  };
  let beat = () => ok() && set(H, now());
  let adopt = () => {
    let r = load(), n = r.e.length, have = {};
    r.e.forEach(e => have[e.messageId] = 1);
    keys().forEach(k => {
      let t = k.slice(7), o; // ecrm_q_<tab>
      if (k.indexOf(P + 'q_') || k == Q || now() - (get(P + 'h_' + t) || 0) < LEASE) return;
      o = load(k);
      r.e = o.e.filter(e => !have[e.messageId] && (have[e.messageId] = 1)).concat(r.e);
      r.d += o.d;
      del(k); del(P + 'h_' + t);
    });
    save(r);
    if (r.e.length > n) flush();
  };
  // Web Locks: one orphan, one adopter
  let adoptLocked = () => { try { nav.locks.request(P + 'adopt', safe(adopt)).catch(e => 0); } catch (e) { adopt(); } };

  let msg = (type, fields, c) => {
    if (!ok()) return;
    ids();
    let e = Object.assign({ type, messageId: uuid(), anonymousId: aid, timestamp: iso(), context: context() }, fields), r;
    if (uid) { e.userId = uid; if (uh) e.context.userHash = uh; }
    if (c != null) e.context.consent = { categoryPreferences: { tracking: c } };
    if (c === false) return beacon([e]); // a withdrawal, now
    beat();
    r = load();
    r.e.push(e);
    save(r);
    r.e.length >= cfg.flushAt ? flush() : later(cfg.flushInterval);
  };

  let later = ms => { timer = timer || setTimeout(safe(() => { timer = 0; flush(); }), ms); };
  let chunk = events => { // fits keepalive's 64 KB
    let b = [], n = 0;
    events.some(e => {
      let s = JSON.stringify(e).length;
      if (b.length && n + s > 6e4) return 1;
      b.push(e); n += s;
    });
    return b;
  };
  let body = b => JSON.stringify({ batch: b, sentAt: iso(), writeKey: key });

  let flush = () => {
    if (busy || !ok()) return;
    if (retryAt > now()) return later(retryAt - now());
    let r = load(), b = chunk(r.e), dropped = r.d, sent = {}, ac, to, s;
    if (!b.length) return;
    if (dropped) (b[0] = json(JSON.stringify(b[0]))).context.ecrm_dropped = dropped;
    b.forEach(e => sent[e.messageId] = inflight[e.messageId] = 1);
    s = body(b);
    busy = 1;
    let done = (status, retry) => {
      let c = status / 100 | 0;
      clearTimeout(to);
      busy = 0; inflight = {};
      if (c == 2 || c == 4 && status != 408 && status != 429) {
        // stored, or refused for good: now it leaves the queue
        let r = load();
        r.e = r.e.filter(e => !sent[e.messageId]);
        r.d = Math.max(0, r.d - dropped);
        save(r);
        if (retryAt) del(P + 'retry');
        attempt = retryAt = 0;
        if (r.e.length) flush();
      } else {
        // backoff, jitter, never before Retry-After (next page too)
        let ms = Math.min(6e4, 1e3 * 2 ** attempt++);
        retryAt = now() + Math.max(ms / 2 + Math.random() * ms / 2, retry * 1e3 || 0);
        if (ok()) set(P + 'retry', retryAt);
        later(retryAt - now());
      }
    };
    try {
      ac = new AbortController();
      to = setTimeout(safe(() => ac.abort()), cfg.timeout);
      fetch(url, { method: 'POST', body: s, credentials: 'omit', signal: ac.signal, keepalive: new Blob([s]).size < 65e3 })
        .then(safe(res => done(res.status, res.headers.get('Retry-After'))), safe(() => done(0)));
    } catch (e) { done(0); }
  };

  // one beacon (keepalive's 64 KB); events stay queued: no answer comes
  let hide = release => {
    if (!ok()) return;
    if (release) set(H, 0); // adopt me now
    if (retryAt > now()) return;
    let b = chunk(load().e.filter(e => !inflight[e.messageId] && !beaconed[e.messageId]));
    if (b[0] && beacon(b)) b.forEach(e => beaconed[e.messageId] = 1);
  };
  let beacon = b => nav.sendBeacon(url, new Blob([body(b)], { type: 'text/plain' }));

  // data-ecrm-product-id -> product_id
  let num = p => {
    for (let k in p) if (NUM.test(k) && /^-?\d+(\.\d+)?$/.test(p[k]) && typeof p[k] == 'string') p[k] = +p[k];
    if (Array.isArray(p.products)) p.products = p.products.map(x => num(Object.assign({}, x)));
    return p;
  };
  let props = el => {
    let p = {};
    for (let a of el.attributes) {
      let k = a.name.slice(10).replace(/-/g, '_');
      if (!a.name.indexOf('data-ecrm-') && !/^(event|view|props|identify|traits|reset)$/.test(k)) p[k] = a.value;
    }
    return num(Object.assign(p, json(el.getAttribute('data-ecrm-props'))));
  };
  let attr = (el, n) => el.getAttribute('data-ecrm-' + n);
  let scan = () => { // once per element and properties
    if (ok()) d.querySelectorAll('[data-ecrm-view]').forEach(el => {
      let name = attr(el, 'view'), p = props(el), s = name + JSON.stringify(p);
      if (seen.get(el) != s) { seen.set(el, s); track(name, p); }
    });
  };
  let autoPage = () => {
    if (!ok()) return skipped = 1;
    api.page();
    scan();
  };
  let spa = safe(() => {
    if (loc.href == here) return;
    ref = here; here = loc.href;
    setTimeout(safe(autoPage)); // once the app has rendered
  });

  let track = (event, p) => event && msg('track', { event: '' + event, properties: Object.assign({}, p) });

  let api = {
    init(k, o) {
      if (started) return;
      key = k || key;
      Object.assign(opt, o);
      if (key) start();
    },
    page(name, p) {
      if (typeof name == 'object') { p = name; name = 0; }
      msg('page', Object.assign(name ? { name: '' + name } : {}, { properties: Object.assign(pageProps(), p) }));
    },
    track,
    identify(id, traits, o) {
      if (!ok()) return;
      if (id && typeof id == 'object') { o = traits; traits = id; id = 0; }
      if (id || id === 0) { ids(); if (uid != id) del(P + 'uh'); set(P + 'uid', id); }
      if (o && o.userHash) set(P + 'uh', o.userHash);
      msg('identify', { traits: Object.assign({}, traits) });
    },
    reset() {
      del(P + 'uid'); del(P + 'uh'); del(P + 'aid'); cookie(P + 'aid', '', 0);
      if (ok()) ids();
    },
    consent(yes, o) {
      let was = ok() && get(P + 'consent') == 1,
        c = ['track', { event: 'Segment Consent Preference Updated', properties: o && { wording: o.wording } }, !!yes];
      if (!yes) return msg.apply(0, c), stop(1); // once, then nothing
      del(P + 'off'); cookie(P + 'off', '', 0);
      off = 0;
      if (dnt) return; // DNT/GPC win
      set(P + 'consent', 1);
      if (!was) msg.apply(0, c);
      beat(); adoptLocked();
      if (skipped) { skipped = 0; autoPage(); }
    },
    flush() { flush(); }
  };
  // productListViewed -> "Product List Viewed"
  ('productViewed productListViewed productClicked productAdded productRemoved cartViewed ' +
    'checkoutStarted orderCompleted productsSearched').split(' ').forEach(n => {
    let event = n[0].toUpperCase() + n.slice(1).replace(/[A-Z]/g, ' $&');
    api[n] = p => track(event, num(Object.assign({}, p)));
  });

  let stop = tell => { // forget all but the opt-out: later pages honour it
    off = 1;
    cookie(P + 'aid', '', 0);
    keys().forEach(k => k != P + 'off' && del(k)); mem = {};
    if (tell) { set(P + 'off', 1); cookie(P + 'off', 1, 31536000); } // other tabs hear it
  };

  let call = a => {
    a = [].slice.call(a);
    let f = api[a[0]];
    if (f) started || a[0] == 'init' ? f.apply(0, a.slice(1)) : pending.push(a);
  };

  let start = () => {
    started = 1;
    cfg = {
      flushAt: +opt.flushAt || 10, flushInterval: +opt.flushInterval || 1e3,
      maxQueue: +opt.maxQueue || 500, timeout: +opt.timeout || 1e4,
      requireConsent: bool(opt.requireConsent)
    };
    off = readCookie(P + 'off') || get(P + 'off');
    dnt = !bool(opt.ignoreDnt) &&
      (/^(1|yes)$/.test(nav.doNotTrack || w.doNotTrack) || nav.globalPrivacyControl === true);
    url = (opt.host || new URL(me && me.src || loc.href).origin).replace(/\/+$/, '') + '/v1/batch';
    let tab = uuid().slice(0, 8);
    Q = P + 'q_' + tab; H = P + 'h_' + tab;
    retryAt = +get(P + 'retry') || 0;
    beat(); if (ok()) adoptLocked();
    setInterval(safe(() => { if (ok()) { beat(); adoptLocked(); flush(); } }), 5e3);
    let on = (t, type, f) => t.addEventListener(type, safe(f), true);
    on(d, 'click', e => {
      let el = e.target.closest && e.target.closest('[data-ecrm-event]');
      if (el) { track(attr(el, 'event'), props(el)); flush(); } // now: it may leave
    });
    on(d, 'visibilitychange', () => d.hidden ? hide() : (beaconed = {}, beat(), flush())); // back from bfcache too
    on(w, 'pagehide', () => hide(1));
    on(w, 'online', () => { attempt = retryAt = 0; flush(); });
    on(w, 'storage', e => { // another tab opted out, or left
      if (e.key == P + 'off' && e.newValue) stop();
      else if (/^ecrm_h_/.test(e.key) && e.newValue == 0 && ok()) adoptLocked();
    });
    on(w, 'popstate', spa);
    ['pushState', 'replaceState'].forEach(m => {
      let orig = history[m];
      if (orig) history[m] = function () { let r = orig.apply(this, arguments); spa(); return r; };
    });
    pending.splice(0).forEach(call);
    let ready = () => {
      let el = d.querySelector('[data-ecrm-reset]');
      if (el) api.reset();
      el = d.querySelector('[data-ecrm-identify]');
      if (el) api.identify(attr(el, 'identify'), json(attr(el, 'traits')), { userHash: attr(el, 'user-hash') });
      autoPage();
      new MutationObserver(safe(() => {
        mo = mo || setTimeout(safe(() => { mo = 0; scan(); }), 100);
      })).observe(d.documentElement, { childList: true, subtree: true });
    };
    d.readyState == 'loading' ? on(d, 'DOMContentLoaded', ready) : ready();
  };

  // Boot: our data-*, then a queued init
  let ecrm = w.ecrm = function () { try { call(arguments); } catch (e) {} }, q = [].slice.call(prev && prev.q || []);
  ecrm.v = V;
  try {
    'writeKey host requireConsent ignoreDnt flushAt flushInterval maxQueue timeout'.split(' ').forEach(n => {
      let v = me && me.getAttribute('data-' + n.replace(/[A-Z]/g, '-$&').toLowerCase());
      if (v != null) opt[n] = v;
    });
    key = opt.writeKey;
    q.forEach(a => { if (a[0] == 'init') { key = a[1] || key; Object.assign(opt, a[2]); } });
    if (key) start();
    q.forEach(a => a[0] != 'init' && ecrm.apply(0, a));
  } catch (e) {}
})(window, document);
