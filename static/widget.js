/*! widget.js, the eCRM recommendation widget: see static/README.md */
((w, d) => {
  if (w.ecrmWidget) return; // loaded twice
  let V = '1.0.0', P = 'ecrm_', nav = navigator, loc = location, count = 0, css, mo, temp;
  let me = d.currentScript || d.querySelector('script[src*="widget.js"]');
  let done = new WeakSet();

  let safe = f => function () { // nothing is ever thrown into the page
    try { return f.apply(this, arguments); } catch (e) {}
  };
  let attr = (el, k) => el && el.getAttribute('data-' + k);
  let flag = (el, k) => { let v = attr(el, k); return v != null && v != 'false'; };
  let el = (tag, cls, parent) => {
    let e = d.createElement(tag);
    if (cls) e.className = 'ecrm-' + cls;
    if (parent) parent.append(e);
    return e;
  };
  let warn = m => { try { console.warn('ecrm widget: ' + m); } catch (e) {} };

  // Calls reach the tracker, or its queue until it loads (the snippet's stub)
  let ecrm = function () {
    w.ecrm = w.ecrm || function () { (w.ecrm.q = w.ecrm.q || []).push(arguments); };
    w.ecrm.apply(0, arguments);
  };

  // an http(s) URL (a path is the page's), else nothing: no javascript:, data:, ...
  let link = u => {
    try { return typeof u == 'string' && u && /^https?:$/.test((u = new URL(u, loc.href)).protocol) ? u.href : ''; } catch (e) { return ''; }
  };
  let money = (v, cur) => {
    if (v == null || v === '' || !isFinite(v = +v)) return '';
    let o = cur ? { style: 'currency', currency: cur } : { minimumFractionDigits: 2, maximumFractionDigits: 2 };
    try { return new Intl.NumberFormat(d.documentElement.lang || undefined, o).format(v); } catch (e) {
      try { return new Intl.NumberFormat(undefined, o).format(v); } catch (e) { return v.toFixed(2) + (cur ? ' ' + cur : ''); }
    }
  };

  // Write key and host: our script tag, else the tracker's
  let conf = () => {
    let t = [].find.call(d.querySelectorAll('script[data-write-key]'), s => s != me);
    return {
      t, key: attr(me, 'write-key') || attr(t, 'write-key'), timeout: +attr(me, 'timeout') || 3e3,
      host: (attr(me, 'host') || attr(t, 'host') || new URL(me && me.src || loc.href).origin).replace(/\/+$/, '')
    };
  };

  // The tracker's ids, read as ecrm.js stores them. Under Do Not Track, GPC or missing consent
  // (as the tracker is told), none: a throwaway id for this page gets unpersonalised results.
  let ids = t => {
    let get = k => { try { return localStorage.getItem(P + k); } catch (e) { return null; } };
    let dnt = !flag(t, 'ignore-dnt') && (/^(1|yes)$/.test(nav.doNotTrack || w.doNotTrack) || nav.globalPrivacyControl === true);
    let cookie = k => (d.cookie.match('(^|;) ?' + P + k + '=([^;]*)') || [])[2];
    if (dnt || cookie('optout') == 1 || get('optout') == 1 || flag(t, 'require-consent') && get('consent') != 1) return {};
    return { a: cookie('aid') || get('aid'), u: get('uid'), h: get('uh') };
  };
  // after the page's DOMContentLoaded handlers (the tracker's among them)
  let ready = f => d.readyState == 'loading' ? d.addEventListener('DOMContentLoaded', () => setTimeout(f)) : f();
  // a first visit: the tracker (async) may not have made its anonymous id yet
  let whenIds = (c, f) => ready(safe(() => {
    let s = d.querySelector('script[src*="ecrm.js"]') || c.t, once = 0;
    let go = safe(() => once++ || f(ids(c.t)));
    if (ids(c.t).a || !s || w.ecrm && w.ecrm.v) return go();
    s.addEventListener('load', () => setTimeout(go));
    s.addEventListener('error', go);
    setTimeout(go, 500);
  }));

  let style = () => {
    if (css) return;
    css = el('style');
    css.id = 'ecrm-widget-css';
    // first in <head>: the page's own rules of equal weight win
    css.textContent = [
      '.ecrm-recs{font-family:var(--ecrm-font,inherit);font-size:var(--ecrm-font-size,1rem);color:var(--ecrm-text,inherit);margin:0 0 var(--ecrm-gap,1rem)}',
      '.ecrm-head{display:flex;align-items:center;gap:.5em;height:2.75em}',
      '.ecrm-heading{flex:1;margin:0;font:inherit;font-size:1.25em;font-weight:700;line-height:1.3;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}',
      '.ecrm-nav{display:flex;gap:.4em;margin-left:auto}',
      '.ecrm-btn{width:2em;height:2em;margin:0;padding:0;border:0;border-radius:var(--ecrm-radius,8px);background:var(--ecrm-accent,#1f5fa8);color:var(--ecrm-accent-text,#fff);font:inherit;font-size:1.1em;line-height:1;cursor:pointer}',
      '.ecrm-btn:disabled{opacity:.35;cursor:default}',
      '.ecrm-track{display:flex;gap:var(--ecrm-gap,1rem);margin:0;padding:4px;list-style:none;overflow-x:auto;scroll-snap-type:x mandatory;scroll-padding:4px;scrollbar-width:none;overscroll-behavior-x:contain}',
      '.ecrm-track::-webkit-scrollbar{display:none}',
      '.ecrm-card{flex:0 0 var(--ecrm-card-width,10rem);max-width:85%;scroll-snap-align:start;margin:0;padding:0;background:var(--ecrm-bg,#fff);border:1px solid var(--ecrm-border,rgba(0,0,0,.12));border-radius:var(--ecrm-radius,8px);overflow:hidden}',
      '.ecrm-link{display:block;height:100%;color:inherit;text-decoration:none}',
      '.ecrm-link:focus-visible{outline:3px solid var(--ecrm-accent,#1f5fa8);outline-offset:-3px}',
      '.ecrm-pic{display:block;aspect-ratio:var(--ecrm-image-ratio,4/3);background:var(--ecrm-placeholder,rgba(127,127,127,.15))}',
      '.ecrm-img{display:block;width:100%;height:100%;object-fit:cover}',
      '.ecrm-title,.ecrm-price{display:block;line-height:1.3;height:1.3em;margin:0 .6em .6em;overflow:hidden}',
      '.ecrm-title{display:-webkit-box;-webkit-box-orient:vertical;-webkit-line-clamp:2;height:2.6em;margin-top:.5em;font-weight:700}',
      '.ecrm-price{color:var(--ecrm-price,inherit)}',
      '.ecrm-skel .ecrm-title,.ecrm-skel .ecrm-price{background:var(--ecrm-placeholder,rgba(127,127,127,.15));border-radius:4px}'
    ].join('');
    (d.head || d.documentElement).prepend(css);
  };

  let slot = box => {
    let c = conf(), n = Math.min(50, Math.max(1, parseInt(attr(box, 'n'), 10) || 8));
    let placement = attr(box, 'placement') || 'default', item = attr(box, 'item-id');
    let title = attr(box, 'title'), id = 'ecrm-recs-' + ++count, fallback = [].slice.call(box.childNodes);
    let reduce = w.matchMedia && matchMedia('(prefers-reduced-motion: reduce)').matches;
    if (title == null) title = 'Recommended for you';
    style();

    // the widget at once, with n empty cards: the space is taken before the answer comes
    let sec = el('section', 'recs'), head = el('div', 'head', sec), bar, list, prev, next;
    if (title) {
      let h = el('h2', 'heading', head);
      h.id = id; h.textContent = title;
      sec.setAttribute('aria-labelledby', id);
    } else sec.setAttribute('aria-label', 'Recommendations');
    sec.setAttribute('aria-busy', 'true');
    bar = el('div', 'nav', head);
    let button = (label, dir, glyph) => {
      let b = el('button', 'btn', bar);
      b.type = 'button'; b.disabled = true; b.textContent = glyph;
      b.setAttribute('aria-label', label);
      b.onclick = safe(() => list.scrollBy({ left: dir * list.clientWidth * .8, behavior: reduce ? 'auto' : 'smooth' }));
      return b;
    };
    prev = button('Previous recommendations', -1, '\u2039');
    next = button('Next recommendations', 1, '\u203a');
    list = el('ul', 'track', sec);
    list.setAttribute('aria-hidden', 'true');
    for (let i = 0; i < n; i++) {
      let li = el('li', 'card ecrm-skel', list);
      ['pic', 'title', 'price'].forEach(k => el('span', k, li));
    }
    box.setAttribute('data-ecrm-state', 'loading');
    box.replaceChildren(sec);

    let collapse = () => { // no broken UI: what was there before, or nothing
      box.replaceChildren.apply(box, fallback);
      box.setAttribute('data-ecrm-state', 'empty');
      if (!fallback.length) { box.hidden = true; box.style.display = 'none'; }
    };

    let show = res => {
      let items = (Array.isArray(res && res.items) ? res.items : []).filter(i => i && i.item_id != null).slice(0, n);
      if (!items.length) return collapse();
      let base = { rec_id: res.rec_id, placement: res.placement || placement, model_version: res.model_version, source: res.source };
      let ul = el('ul', 'track');
      ul.setAttribute('role', 'list'); // list-style:none must not hide it from screen readers
      items.forEach((it, i) => {
        let li = el('li', 'card', ul), href = link(it.url), src = link(it.image_url);
        let name = '' + (it.title || it.item_id), a = el(href ? 'a' : 'div', 'link', li), pic = el('span', 'pic', a);
        if (href) {
          a.href = href;
          let clicked = safe(e => {
            if (e.type == 'auxclick' && e.button != 1) return;
            ecrm('track', 'Recommendation Clicked', Object.assign({ product_id: '' + it.item_id, position: i + 1 }, base));
            ecrm('flush'); // now: the page is about to go (and pagehide sends a beacon)
          });
          a.addEventListener('click', clicked);
          a.addEventListener('auxclick', clicked);
        }
        if (src) {
          let img = el('img', 'img', pic);
          img.alt = name; img.loading = 'lazy'; img.decoding = 'async';
          img.onerror = () => img.remove(); // a broken picture leaves the placeholder
          img.src = src;
        }
        el('span', 'title', a).textContent = name;
        el('span', 'price', a).textContent = money(it.price, it.currency);
      });
      list.replaceWith(ul);
      list = ul;
      sec.removeAttribute('aria-busy');
      box.setAttribute('data-ecrm-state', 'ready');

      let arrows = safe(() => {
        let end = list.scrollWidth - list.clientWidth;
        prev.disabled = list.scrollLeft < 2;
        next.disabled = list.scrollLeft > end - 2;
        bar.style.visibility = end < 2 ? 'hidden' : ''; // everything fits
      });
      list.addEventListener('scroll', arrows, { passive: true });
      w.addEventListener('resize', arrows);
      arrows();

      // Shown once, when at least half of it is on screen
      let seen = 0, inView = 0, io;
      let shown = safe(() => {
        if (seen || !inView || d.hidden) return;
        seen = 1;
        if (io) io.disconnect();
        d.removeEventListener('visibilitychange', shown);
        ecrm('track', 'Recommendation Shown', Object.assign({ product_ids: items.map(i => '' + i.item_id) }, base));
      });
      d.addEventListener('visibilitychange', shown);
      if (w.IntersectionObserver) {
        io = new IntersectionObserver(safe(es => {
          es.forEach(e => inView = e.isIntersecting && e.intersectionRatio >= .5);
          shown();
        }), { threshold: [0, .5, 1] });
        io.observe(sec);
      } else { inView = 1; shown(); }
    };

    if (!c.key) { warn('no write key: set data-write-key on its script tag or the tracker\'s'); return collapse(); }
    whenIds(c, who => { try {
      let q = new URLSearchParams({ write_key: c.key, n, placement }), ac = new AbortController();
      let exclude = (attr(box, 'exclude') || '').split(',').map(s => s.trim()).filter(Boolean).slice(0, 100);
      if (!item && !who.a && !who.u) who.a = temp = temp || 'tmp-' + Math.random().toString(36).slice(2);
      if (who.u) q.set('user_id', who.u);
      if (who.u && who.h) q.set('user_hash', who.h); // the shop server's signature of user_id
      if (who.a) q.set('anonymous_id', who.a);
      if (attr(box, 'category')) q.set('category', attr(box, 'category'));
      if (exclude.length) q.set('exclude', exclude.join(','));
      let to = setTimeout(safe(() => ac.abort()), c.timeout);
      fetch(c.host + '/v1/' + (item ? 'items/' + encodeURIComponent(item) + '/similar' : 'recommendations') + '?' + q,
        { credentials: 'omit', signal: ac.signal })
        .then(r => {
          if (r.ok) return r.json();
          r.json().then(b => warn(r.status + ' ' + (b.error && b.error.message || '')), () => warn(r.status));
          throw 0;
        })
        .then(res => { clearTimeout(to); show(res); })
        .catch(safe(() => { clearTimeout(to); collapse(); }));
    } catch (e) { collapse(); } });
  };

  let scan = safe(() => d.querySelectorAll('[data-ecrm-recs]').forEach(box => {
    if (done.has(box)) return;
    done.add(box);
    safe(slot)(box);
  }));

  w.ecrmWidget = { v: V, scan };
  // slots are drawn as soon as they are parsed (the space is kept before the first paint),
  // and when a page adds them later
  try {
    new MutationObserver(safe(() => { mo = mo || setTimeout(() => { mo = 0; scan(); }, 30); }))
      .observe(d.documentElement, { childList: true, subtree: true });
  } catch (e) {}
  scan();
  ready(scan);
})(window, document);
