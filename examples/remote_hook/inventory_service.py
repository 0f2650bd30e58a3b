"""A tiny inventory service with an OpenAPI document: any such service becomes taskengine tools.

    python examples/remote_hook/inventory_service.py --port 8099

Its operations (`getStock`, `reserve`) become the tools `inventory.getStock` and
`inventory.reserve` of the remote hook `inventory` declared in taskengine.yaml. Every call must
carry the `X-Api-Key` header, which taskengine injects and never shows to the chain or a model.
"""

import argparse
import os

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

API_KEY = os.environ.get("INVENTORY_KEY", "dev-key")
STOCK = {"A-100": 12, "B-200": 0}

app = FastAPI(title="inventory", version="1.0")


class Reservation(BaseModel):
    sku: str
    quantity: int = 1


def _check(key: str | None) -> None:
    if key != API_KEY:
        raise HTTPException(status_code=401, detail="bad or missing X-Api-Key")


@app.get("/stock/{sku}", operation_id="getStock", summary="Units in stock for a SKU.")
def get_stock(sku: str, x_api_key: str | None = Header(None)) -> dict:
    _check(x_api_key)
    if sku not in STOCK:
        raise HTTPException(status_code=404, detail=f"unknown sku {sku}")
    return {"sku": sku, "in_stock": STOCK[sku]}


@app.post("/reservations", operation_id="reserve", summary="Reserve units of a SKU.")
def reserve(body: Reservation, x_api_key: str | None = Header(None)) -> dict:
    _check(x_api_key)
    if STOCK.get(body.sku, 0) < body.quantity:
        raise HTTPException(status_code=409, detail="not enough stock")
    STOCK[body.sku] -= body.quantity
    return {"sku": body.sku, "reserved": body.quantity, "left": STOCK[body.sku]}


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8099)
    uvicorn.run(app, host="127.0.0.1", port=parser.parse_args().port, log_level="warning")
