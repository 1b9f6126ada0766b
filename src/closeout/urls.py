from django.conf.urls.i18n import i18n_patterns
from django.urls import include, path

from closeout.api.v1 import api
from closeout.integrations import views as sim
from closeout.integrations.sms import views as sim_sms
from closeout.portal import views as portal

urlpatterns = [
    path("api/v1/", api.urls),
    path("", include("closeout.integrations.urls")),
    path("sim/payments/payments", sim.payment_payments),
    path("sim/sms/messages", sim_sms.messages),
    path("", portal.pick_language, name="root"),
    path("i18n/", include("django.conf.urls.i18n")),
]
urlpatterns += i18n_patterns(path("", include("closeout.portal.urls")), prefix_default_language=True)
