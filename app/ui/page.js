// BFN Studio's scripts. Each function here is one script of the page: `app.ui.assets.script(name, ...)` hands it
// to an event (or to the page's load) with its arguments. Gradio runs them in the browser, before or instead of
// the event's handler on the server.

// Gradio's own click coordinates assume an image is never shown larger than its file, but the live images are
// small files enlarged by CSS; so clicks are mapped to image pixels here (object-fit: contain) and passed on
// through a hidden textbox (#pixel-click), whose input event runs the generation's click_pixel.
function followClicks() {
  document.addEventListener("click", (ev) => {
    const img = ev.target.closest && ev.target.closest(".pixelated img");
    if (!img || !img.naturalWidth) return;
    const r = img.getBoundingClientRect();
    const s = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
    const x = (ev.clientX - r.left - (r.width - img.naturalWidth * s) / 2) / s;
    const y = (ev.clientY - r.top - (r.height - img.naturalHeight * s) / 2) / s;
    if (x < 0 || y < 0 || x >= img.naturalWidth || y >= img.naturalHeight) return;
    const box = document.querySelector("#pixel-click textarea, #pixel-click input");
    if (!box) return;
    box.value = `${x.toFixed(2)},${y.toFixed(2)},${Date.now()}`;
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }, true);
}

// A slider's number box takes any typed text, and when it loses focus Gradio clamps it to the slider's range:
// a typed 5000 steps would run as 1000. So the page remembers what was typed in each box (rememberTyped), and
// Generate sends that text (typedValues) while the box shows its clamp of it, for the server to refuse with its
// message ("steps must be from 1 to 1000; got '5000'").
function rememberTyped() {
  document.addEventListener("input", (ev) => {
    const box = ev.target;
    if (box instanceof HTMLInputElement && box.type === "number") box.dataset.typed = box.value;
  }, true);
}

// The settings' values (`ids`: each setting's slider id, or null), with each slider's typed text where its box
// still shows the clamp of it (dragging the slider or resetting it since then sends the value shown).
function typedValues(ids, ...values) {
  return ids.map((id, i) => {
    const box = id && document.querySelector(`#${id} input[type=number]`);
    if (!box) return values[i];
    const typed = box.dataset.typed, clamp = (x) => Math.min(Math.max(x, Number(box.min)), Number(box.max));
    return typed !== undefined && typed !== box.value && clamp(Number(typed)) === Number(box.value) ? typed : values[i];
  });
}

// A whole random seed from 0 to `most`.
function randomSeed(most) {
  return Math.floor(Math.random() * most);
}

// `value` itself: what a tab writes into the hidden box that names the open tab.
function constant(value) {
  return value;
}

// The sketchpad opens with no tool chosen ("select the draw tool to start"): choose the brush once it is there.
function selectBrush() {
  let tries = 0;
  const pick = () => {
    const brush = document.querySelector('#digit-sketch button[aria-label="Brush"]');
    if (brush) { brush.click(); return; }
    if (++tries < 50) setTimeout(pick, 200);
  };
  pick();
}

// The server writes a link's query; the page puts it in its address bar (without a new history entry).
function replaceAddress(query) {
  if (query) history.replaceState(history.state, "", "?" + query);
}

// "Copy link" copies the whole address too where the browser allows (on plain http only localhost may), saying
// so on the button for a moment, and returns it for the box below the button, from which it can always be
// copied by hand.
function copyLink(query) {
  const url = `${location.origin}${location.pathname}?${query}`;
  history.replaceState(history.state, "", url);
  const button = document.querySelector("#copy-link-btn");
  navigator.clipboard?.writeText(url).then(() => {
    if (!button || button.dataset.copied) return;
    button.dataset.copied = button.textContent;
    button.textContent = "Link copied ✓";
    setTimeout(() => { button.textContent = button.dataset.copied; delete button.dataset.copied; }, 1500);
  }).catch(() => {});
  return url;
}
