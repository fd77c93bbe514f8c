"""``laionflow serve INDEX_DIR``: a small HTTP query service over a built index.

``GET /query?text=...&k=5`` (text → image) and ``POST /query/image?k=5`` with the image as the
request body (image → image) return ``{"hits": [{id, distance, key, part, url, caption}]}``
— the very answer ``laionflow query`` prints, from the same :class:`IndexReader` code. The
index is memory-mapped and loaded once. Binds 127.0.0.1 unless told otherwise.
"""

from fastapi import FastAPI, HTTPException, Query, Request

from laionflow.query import IndexReader

# no ``from __future__ import annotations`` here: FastAPI reads these annotations at run time


def create_app(index_dir: str) -> FastAPI:

    reader = IndexReader(index_dir)
    app = FastAPI(title="laionflow query", version="0.1")

    @app.get("/health")
    def health() -> dict:
        return {"vectors": int(reader.image.ntotal), "model": reader.info["model"]}

    @app.get("/query")
    def by_text(text: str = Query(min_length=1), k: int = Query(5, ge=1, le=1000)) -> dict:
        return {"hits": reader.nearest(text=text, k=k)}

    @app.post("/query/image")
    async def by_image(request: Request, k: int = Query(5, ge=1, le=1000)) -> dict:
        body = await request.body()
        if not body:
            raise HTTPException(400, "send the image as the request body")
        try:
            return {"hits": reader.nearest(image=body, k=k)}
        except OSError as err:  # PIL: not an image
            raise HTTPException(400, f"not a readable image: {err}") from err

    return app


def serve(index_dir: str, host: str = "127.0.0.1", port: int = 8765) -> None:
    import uvicorn

    uvicorn.run(create_app(index_dir), host=host, port=port, log_level="info")
