from django.conf.urls.i18n import i18n_patterns
from django.urls import include, path

from closeout.api.v1 import api
from closeout.integrations import views as sim
from closeout.ops import views as ops
from closeout.portal import views as portal

urlpatterns = [
    path("api/v1/", api.urls),
    path("metrics", ops.metrics_view, name="metrics"),
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("sim/payments/refunds", sim.payment_refunds),
    path("sim/cards/blocked", sim.cards_blocked),
    path("sim/faults", sim.faults),
    path("", portal.pick_language, name="root"),
    path("i18n/", include("django.conf.urls.i18n")),
]
urlpatterns += i18n_patterns(path("", include("closeout.portal.urls")), prefix_default_language=True)
