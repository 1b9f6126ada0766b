from django.conf.urls.i18n import i18n_patterns
from django.urls import include, path

from closeout.aftercare import views as aftercare
from closeout.api.v1 import api
from closeout.certificates import views as certificates
from closeout.integrations import views as sim
from closeout.integrations.mailbox import views as sim_mail
from closeout.integrations.sms import views as sim_sms
from closeout.ops import views as ops
from closeout.portal import views as portal

handler500 = "closeout.common.errors.server_error"

urlpatterns = [
    path("api/v1/", api.urls),
    path("console/", include("closeout.console.urls")),
    path("", include("closeout.integrations.urls")),
    path("sim/cards/transactions", aftercare.sim_card_transactions),
    path("verify/<str:certificate_id>", certificates.verify_page, name="certificate-verify"),
    path("metrics", ops.metrics_view, name="metrics"),
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("sim/payments/payments", sim.payment_payments),
    path("sim/sms/messages", sim_sms.messages),
    path("sim/mail/messages", sim_mail.messages),
    path("", portal.pick_language, name="root"),
    path("i18n/", include("django.conf.urls.i18n")),
]
urlpatterns += i18n_patterns(
    path("", include("closeout.portal.urls")),
    path("case/<str:reference>/export.<str:fmt>", aftercare.case_export_download, name="case-export"),
    prefix_default_language=True,
)
