"""The Serve deployments and the HTTP API of `ensemble serve` (ensemble/serve/command.py builds and
runs them). Imported only where Ray Serve and FastAPI are installed (`ray[serve]`).

`Ingress` answers HTTP and routes each label; `generators(m)` is the deployment behind it,
multiplexed by generator file and step with at most m generators per replica."""

import asyncio
import json
import threading

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError

from ensemble.serve.rules import (
    MAX_BODY_BYTES,
    MAX_PER_LABEL,
    REQUEST_TIMEOUT_S,
    RETRY_AFTER_S,
    ManifestView,
    RequestError,
    b64_png,
    check_count,
    check_seed_asked,
    check_splits,
    host_allowed,
    served_generator,
    served_model,
)
from ensemble.serve.page import GALLERY

api = FastAPI(
    title="acgan-ensemble",
    description="Samples of an AC-GAN ensemble, each label routed to the generator of the split that owns it.",
    version="1",
)


@api.exception_handler(RequestError)
async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=exc.headers)


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "body"))
    return JSONResponse({"error": f"{where or 'request'}: {first.get('msg', 'invalid')}"}, status_code=422)


@api.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return JSONResponse({"error": f"internal error: {message[:300]}"}, status_code=500)


class GeneratorReplica:
    """One replica of the generators: loads a split's generator by model id and samples it."""

    def __init__(self, run_dir: str):
        from manifests.run_dir import RunDir

        self.run = RunDir(run_dir)

    async def load(self, model_id: str):
        """model_id: `PATH@STEP` (ServedModel.model_id): a newer checkpoint is another model."""
        from workers.checkpoints import load_generator
        from workers.devices import pick_device

        path = model_id.rsplit("@", 1)[0]
        return await asyncio.to_thread(load_generator, self.run.root / path, str(pick_device()))

    async def sample(self, requests: list[tuple[int, int, int]]) -> dict:
        """[(local label, n, seed)] -> {"images": a (n, 3, S, S) uint8 tensor each, "step"},
        or {"error": one line} for a checkpoint that cannot be loaded."""
        from workers.checkpoints import CheckpointError
        from workers.images import generate

        try:
            generator, info = await self.generator(serve.get_multiplexed_model_id())
        except CheckpointError as exc:  # named within the run: an HTTP client is not told this machine's paths
            return {"error": str(exc).replace(str(self.run.root).rstrip("/") + "/", "")}
        # Off the replica's event loop: a request of 1024 images of a large preset takes seconds,
        # and the loop must go on taking (and cancelling) requests meanwhile. A request cancelled
        # meanwhile (its client gone, or the ingress's timeout) stops before the generator's
        # next pass (at most 64 images at 128 px, workers/images.py), raising Abandoned in the
        # thread, whose result no one awaits any more.
        abandoned = threading.Event()

        def work() -> list:
            return [generate(generator, k, n, seed, abandoned.is_set) for k, n, seed in requests]

        try:
            images = await asyncio.to_thread(work)
        except asyncio.CancelledError:
            abandoned.set()
            raise
        return {"images": images, "step": info.step}


def generators(models_per_replica: int):
    """The generators' deployment, keeping at most `models_per_replica` loaded per replica.
    Serve fixes that bound when the loader is decorated, so the class is made per bound."""

    class Generators(GeneratorReplica):
        @serve.multiplexed(max_num_models_per_replica=models_per_replica)
        async def generator(self, model_id: str):
            return await self.load(model_id)

    return serve.deployment(name="Generators")(Generators)


async def _bounded_body(request: Request) -> bytes:
    """The request's body, refused with 413 as soon as it is known to pass MAX_BODY_BYTES: from
    its Content-Length before a byte of it is read, else while it streams in."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise RequestError(413, f"the body is {declared[:20]} bytes; at most {MAX_BODY_BYTES}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise RequestError(413, f"the body is over {MAX_BODY_BYTES} bytes; at most {MAX_BODY_BYTES}")
    return bytes(body)


@serve.deployment(name="Ingress")
@serve.ingress(api)
class Ingress:
    def __init__(self, generators, run_dir: str, checkpoint: str, host: str = "127.0.0.1"):
        self.host = host
        self.generators = generators
        self.manifest = ManifestView(run_dir)
        self.checkpoint = checkpoint

    async def _sample(self, groups: dict) -> dict:
        """{model: [(route, n, seed)]} -> {(label, seed): images}, one call per split, all at once."""
        async def one(model, asked):
            handle = self.generators.options(multiplexed_model_id=model.model_id)
            requests = [(r.local_label, n, s) for r, n, s in asked]
            try:
                answer = await handle.sample.remote(requests)
            except RayActorError:  # its replica died (killed, OOM): once more, on a live one
                answer = await handle.sample.remote(requests)
            if "error" in answer:  # this split only; the others keep serving
                raise RequestError(500, f"split {model.split} cannot be served: {answer['error']}")
            return [((r.global_label, s), (imgs, answer["step"])) for (r, _, s), imgs in zip(asked, answer["images"])]

        try:
            done = await asyncio.wait_for(asyncio.gather(*(one(m, a) for m, a in groups.items())), REQUEST_TIMEOUT_S)
        except asyncio.TimeoutError:  # wait_for cancelled the calls, and so the work they asked for
            raise RequestError(503, f"the generators did not answer in {REQUEST_TIMEOUT_S:g} s; try again") from None
        except BackPressureError:
            raise RequestError(503, f"the generators are busy (their queue is full); retry in {RETRY_AFTER_S} s",
                               headers={"Retry-After": str(RETRY_AFTER_S)}) from None  # fmt: skip
        except RequestError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a replica that died twice: one line, not a traceback
            message = str(exc).strip().splitlines()
            detail = next((line for line in reversed(message) if "Error" in line), message[-1] if message else "")
            raise RequestError(500, f"cannot sample split(s) {sorted(m.split for m in groups)}: {detail[:400]}") from None
        return dict(pair for result in done for pair in result)

    def _check_host(self, request: Request) -> None:
        """A request naming another host is refused (rules.host_allowed: DNS rebinding)."""
        header = request.headers.get("host")
        if not host_allowed(header, self.host):
            raise RequestError(421, f"this server answers requests for {self.host} only, not for host {header[:100]!r}")

    def _route(self, label: str):
        route = self.manifest.resolve(label)
        return route, served_model(route, self.checkpoint)

    @api.get("/healthz")
    async def healthz(self, request: Request) -> dict:
        self._check_host(request)
        return {"ok": True, "classes": self.manifest.current().num_classes}

    @api.get("/v1/classes")
    async def classes(self, request: Request) -> dict:
        self._check_host(request)
        rows = []
        for record in self.manifest.current().records:
            model = served_generator(record, self.checkpoint)
            for local, (label, name, class_id) in enumerate(zip(record.classes, record.class_names,
                                                                record.class_ids)):  # fmt: skip
                rows.append({"label": label, "name": name, "class_id": class_id, "split": record.split,
                             "local_class": local, "checkpoint": model and model.kind,
                             "step": model and model.step})  # fmt: skip
        return {"classes": rows}

    @api.get("/v1/sample")
    async def sample(self, request: Request, label: str, n: int = 16, seed: int = 0, format: str = "png"):
        self._check_host(request)
        if format not in ("png", "json"):
            raise RequestError(422, f"format must be png or json, got {format!r}")
        check_count(n)
        check_seed_asked(seed)
        route, model = self._route(label)
        images, step = (await self._sample({model: [(route, n, seed)]}))[(route.global_label, seed)]
        if format == "png":
            from workers.images import encode, tile

            headers = {"X-Label": str(route.global_label), "X-Split": str(model.split), "X-Step": str(step)}
            png = await asyncio.to_thread(lambda: encode(tile(images)))  # off the event loop: /healthz stays quick
            return Response(png, media_type="image/png", headers=headers)
        return await asyncio.to_thread(self._json, route, model, step, seed, images)

    @api.post("/v1/samples")
    async def samples(self, request: Request):
        self._check_host(request)
        body = await _bounded_body(request)
        try:
            asked = json.loads(body or b"null")
        except ValueError:
            raise RequestError(422, "the body is not JSON; send {\"labels\": [417, \"balloon\"], \"n\": 4, \"seed\": 0}") from None
        if not isinstance(asked, dict) or not isinstance(asked.get("labels"), list) or not asked["labels"]:
            raise RequestError(422, "the body must be a JSON object with a non-empty list `labels`")
        n, seed = asked.get("n", 4), asked.get("seed", 0)
        if not isinstance(n, int) or isinstance(n, bool) or not isinstance(seed, int) or isinstance(seed, bool):
            raise RequestError(422, "n and seed must be integers")
        labels = asked["labels"]
        if not all(isinstance(label, (int, str)) and not isinstance(label, bool) for label in labels):
            raise RequestError(422, "each label must be an index or a name")
        check_count(n, len(labels))
        check_seed_asked(seed)
        routes = [self.manifest.resolve(str(label)) for label in labels]
        check_splits(routes)  # before any generator is looked up
        routed = [(route, served_model(route, self.checkpoint)) for route in routes]
        groups: dict = {}
        for route, model in routed:  # grouped by split: one call each, its labels together
            groups.setdefault(model, [])
            if all(r.global_label != route.global_label for r, _, _ in groups[model]):
                groups[model].append((route, n, seed))
        done = await self._sample(groups)

        def encoded() -> list[dict]:  # PNG + base64 of up to MAX_PER_REQUEST images: off the event loop
            results = []
            for route, model in routed:  # in the order asked
                images, step = done[(route.global_label, seed)]
                results.append(self._json(route, model, step, seed, images))
            return results

        return {"results": await asyncio.to_thread(encoded)}

    @staticmethod
    def _json(route, model, step, seed, images) -> dict:
        return {"label": route.global_label, "name": route.class_name, "class_id": route.record.class_ids[route.local_label],
                "split": model.split, "local_class": route.local_label, "checkpoint": model.kind, "step": step,
                "seed": seed, "images": [b64_png(image) for image in images]}  # fmt: skip

    @api.get("/", response_class=HTMLResponse)
    async def gallery(self, request: Request) -> str:
        self._check_host(request)
        return GALLERY.replace("__MAX__", str(MAX_PER_LABEL))
