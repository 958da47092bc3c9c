"""JSON routes under /api: small routers, one per resource."""

from fastapi import APIRouter

from service.api import experiments, ingest, models, report, trials

router = APIRouter(prefix="/api")
router.include_router(experiments.router)
router.include_router(trials.router)
router.include_router(models.router)
router.include_router(report.router)
router.include_router(ingest.router)
