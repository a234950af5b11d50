(function () {
  'use strict';
  var me = document.currentScript;
  if (!me || window.__portcullis) return;
  var cfg;
  try { cfg = JSON.parse(me.getAttribute('data-portcullis')); } catch (e) { return; }
  if (!cfg || typeof cfg.token !== 'string') return;

  var BLOCK = 'block', ALLOW = 'allow';
  var mainWin = window, doc = document, origin = location.origin;
  var fetchFn = window.fetch, stringify = JSON.stringify, now = Date.now;
  var styleEl = me.previousElementSibling;
  var styleText = styleEl && styleEl.id === '__portcullis-style' ? styleEl.textContent : '';
  var nonce = me.nonce || me.getAttribute('nonce') || '';
  var budget = 120, lastPrint = 0, bannerEl = null;
  var hooked = new WeakSet(), docs = new WeakSet();

  function report(kind, blocked) {
    if (budget-- <= 0) return;
    var url = origin + cfg.report;
    var body = stringify({ token: cfg.token, kind: kind, blocked: blocked, url: String(location.href).slice(0, 2048) });
    try {
      fetchFn.call(mainWin, url, {
        method: 'POST', body: body, headers: { 'Content-Type': 'application/json' },
        credentials: 'same-origin', keepalive: true, cache: 'no-store', redirect: 'error'
      })['catch'](function () {});
    } catch (e) {
      try { navigator.sendBeacon(url, new Blob([body], { type: 'application/json' })); } catch (e2) {}
    }
  }

  function banner() {
    var root = doc.documentElement;
    if (!root) return;
    if (!bannerEl) {
      bannerEl = doc.createElement('div');
      bannerEl.id = '__portcullis-banner';
      bannerEl.setAttribute('role', 'alert');
      var text = doc.createElement('span');
      text.textContent = cfg.message;
      var close = doc.createElement('button');
      close.type = 'button';
      close.textContent = '\u00d7';
      close.setAttribute('aria-label', 'Dismiss');
      close.addEventListener('click', function () { bannerEl.remove(); });
      bannerEl.appendChild(text);
      bannerEl.appendChild(close);
    }
    if (!bannerEl.isConnected) root.appendChild(bannerEl);
  }

  function attempt(kind, blocked) {
    if (kind === 'print') lastPrint = now();
    report(kind, blocked);
    if (blocked) banner();
  }

  // Clipboard events are caught on the window in the capture phase, before
  // any handler of the page can see them (or fill clipboardData itself).
  function guardEvents(win, kind, mode, types) {
    types.forEach(function (type) {
      win.addEventListener(type, function (e) {
        if (mode === BLOCK) {
          e.preventDefault();
          e.stopImmediatePropagation();
        }
        attempt(kind, mode === BLOCK);
      }, true);
    });
  }

  // The asynchronous Clipboard API bypasses the events.
  function guardAsync(win, kind, mode, names) {
    var c = win.navigator && win.navigator.clipboard;
    if (!c) return;
    names.forEach(function (n) {
      var orig = c[n];
      if (typeof orig !== 'function') return;
      try {
        Object.defineProperty(c, n, {
          configurable: true, value: function () {
            attempt(kind, mode === BLOCK);
            if (mode === BLOCK) return Promise.reject(new win.DOMException('Blocked by your organization\'s policy', 'NotAllowedError'));
            return orig.apply(c, arguments);
          }
        });
      } catch (e) {}
    });
  }

  function guardPrint(win, mode) {
    var orig = win.print;
    try {
      win.print = function () {
        attempt('print', mode === BLOCK);
        if (mode !== BLOCK) return orig.apply(win, arguments);
      };
    } catch (e) {}
    win.addEventListener('keydown', function (e) {
      if ((e.ctrlKey || e.metaKey) && !e.altKey && (e.key === 'p' || e.key === 'P' || e.code === 'KeyP')) {
        if (mode === BLOCK) {
          e.preventDefault();
          e.stopImmediatePropagation();
        }
        attempt('print', mode === BLOCK);
      }
    }, true);
    // Printing from the browser's menu: the print stylesheet already hides
    // the page; this only reports it.
    win.addEventListener('beforeprint', function () {
      if (now() - lastPrint > 2000) attempt('print', mode === BLOCK);
    }, true);
  }

  function protect(win) {
    try {
      if (!win.__portcullis) {
        Object.defineProperty(win, '__portcullis', { value: Object.freeze({ version: 1 }) });
        guardWindow(win);
      }
      guardDocument(win, win.document);
    } catch (e) {}
  }

  function guardWindow(win) {
    if (cfg.cut_copy !== ALLOW) {
      guardEvents(win, 'cut_copy', cfg.cut_copy, ['copy', 'cut']);
      guardAsync(win, 'cut_copy', cfg.cut_copy, ['write', 'writeText']);
    }
    if (cfg.paste !== ALLOW) {
      guardEvents(win, 'paste', cfg.paste, ['paste']);
      guardAsync(win, 'paste', cfg.paste, ['read', 'readText']);
      if (cfg.paste === BLOCK) {
        win.addEventListener('beforeinput', function (e) {
          if (/^insertFromPaste/.test(e.inputType || '')) e.preventDefault();
        }, true);
      }
    }
    if (cfg.print !== ALLOW) guardPrint(win, cfg.print);
  }

  // A frame's window can outlive its first (about:blank) document, so the
  // print stylesheet and the frame watch go per document.
  function guardDocument(win, d) {
    if (!d || docs.has(d)) return;
    docs.add(d);
    if (win !== mainWin && styleText) {
      var st = d.createElement('style');
      st.setAttribute('nonce', nonce);
      st.textContent = styleText;
      (d.head || d.documentElement || d).appendChild(st);
    }
    watchFrames(d);
  }

  // Same-origin frames a page builds itself (about:blank, srcdoc: rich
  // text editors do) never pass through the proxy: guard them from here.
  function hook(f) {
    if (hooked.has(f)) return;
    hooked.add(f);
    try { protect(f.contentWindow); } catch (e) {}
    f.addEventListener('load', function () { try { protect(f.contentWindow); } catch (e) {} });
  }

  function scan(node) {
    if (node.nodeType !== 1) return;
    if (node.tagName === 'IFRAME' || node.tagName === 'FRAME') hook(node);
    var list = node.getElementsByTagName('iframe');
    for (var i = 0; i < list.length; i++) hook(list[i]);
  }

  function watchFrames(d) {
    if (!d || typeof MutationObserver !== 'function') return;
    new MutationObserver(function (records) {
      for (var i = 0; i < records.length; i++) {
        var added = records[i].addedNodes;
        for (var j = 0; j < added.length; j++) scan(added[j]);
      }
    }).observe(d, { childList: true, subtree: true });
    if (d.documentElement) scan(d.documentElement);
  }

  protect(mainWin);
})();
