"""The gallery `ensemble serve` answers at /: type a class name (or label), see its samples.
One page, no library; it calls the service's own /v1/classes and /v1/sample."""

GALLERY = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>acgan-ensemble gallery</title><link rel="icon" href="data:,">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#fafafa;color:#222}
main{max-width:1000px;margin:0 auto;padding:16px 24px}
h1{font-size:22px;margin:8px 0}
form{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin:10px 0}
input{font-size:14px;padding:4px 8px} #label{width:320px} #n,#seed{width:70px}
button{font-size:14px;padding:4px 12px}
#about{color:#444;margin:8px 0} #error{color:#c62828;margin:8px 0}
#images{display:flex;flex-wrap:wrap;gap:6px}
#images img{width:96px;height:96px;image-rendering:pixelated;border:1px solid #ccc;background:#fff}
</style></head>
<body><main>
<h1>acgan-ensemble gallery</h1>
<div id="classes">loading the classes...</div>
<form id="ask">
  <input id="label" list="names" placeholder="class name or label, e.g. 417" aria-label="class" required>
  <datalist id="names"></datalist>
  <label>n <input id="n" type="number" min="1" max="__MAX__" value="16"></label>
  <label>seed <input id="seed" type="number" value="0"></label>
  <button type="submit">Show</button>
</form>
<div id="about"></div><div id="error"></div>
<div id="images"></div>
</main>
<script>
(async function(){
  const names = document.getElementById('names'), about = document.getElementById('about'),
        error = document.getElementById('error'), images = document.getElementById('images');
  const listed = await (await fetch('v1/classes')).json();
  const ready = listed.classes.filter(c => c.step !== null).length;
  document.getElementById('classes').textContent =
    listed.classes.length + ' classes, ' + ready + ' with a trained generator.';
  for (const c of listed.classes) { const o = document.createElement('option'); o.value = c.name; o.label = c.label; names.appendChild(o); }
  async function show(label){
    error.textContent = ''; about.textContent = 'sampling...';
    const query = new URLSearchParams({label: label, n: document.getElementById('n').value,
                                       seed: document.getElementById('seed').value, format: 'json'});
    const answer = await fetch('v1/sample?' + query);
    const body = await answer.json();
    images.replaceChildren();
    if (!answer.ok) { about.textContent = ''; error.textContent = body.error; return; }
    about.textContent = body.label + ' ' + body.name + ': split ' + body.split + ', local class ' + body.local_class +
      ', ' + body.checkpoint + ' generator at step ' + body.step + ', seed ' + body.seed;
    for (const data of body.images) {
      const img = document.createElement('img'); img.src = 'data:image/png;base64,' + data; img.alt = body.name;
      images.appendChild(img);
    }
  }
  document.getElementById('ask').addEventListener('submit', e => { e.preventDefault(); show(document.getElementById('label').value); });
  const first = new URLSearchParams(location.search).get('label');
  if (first) { document.getElementById('label').value = first; await show(first); }
  document.body.dataset.ready = 'yes';
})();
</script></body></html>
"""
