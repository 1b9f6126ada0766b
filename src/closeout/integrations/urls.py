from django.urls import path

from closeout.integrations import views

urlpatterns = [
    path("sim/payments/refunds", views.payment_refunds),
    path("sim/cards/blocked", views.cards_blocked),
    path("sim/cards/numbers-deactivated", views.numbers_deactivated),
    path("sim/cards/api/cards/<str:number>/block", views.cms_block),
    path("sim/cards/api/numbers/<str:iccid>/deactivate", views.cms_deactivate_number),
    path("sim/cards/api/cards/<str:number>", views.cms_card),
    path("sim/smdp/profiles", views.smdp_profiles),
    path("sim/smdp/gsma/rsp2/es2plus/<str:function>", views.es2_function),
    path("sim/smdp/devices/<str:iccid>/delete", views.sim_device_delete),
    path("sim/partners/deliveries", views.partner_deliveries),
    path("sim/partners/<slug:code>/webhook", views.sim_partner_webhook),
    path("sim/shipping/shipments", views.shipments),
    path("sim/shipping/api/return-labels", views.carrier_label),
    path("sim/shipping/api/shipments/<str:tracking_number>/events", views.carrier_events),
    path("sim/faults", views.faults),
    path("webhooks/payments", views.payments_webhook),
    path("gsma/rsp2/es9plus/handleNotification", views.es9_handle_notification),
    path("feeds/hotlist", views.hotlist_feed),
]
