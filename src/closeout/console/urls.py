from django.urls import path

from closeout.console import views

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.sign_in, name="sign_in"),
    path("login/code/", views.sign_in_code, name="sign_in_code"),
    path("logout/", views.sign_out, name="sign_out"),
    path("cases/", views.search, name="search"),
    path("cases/<str:reference>/", views.case_page, name="case"),
    path("cases/<str:reference>/hold", views.case_hold, name="case_hold"),
    path("cases/<str:reference>/resume", views.case_resume, name="case_resume"),
    path("cases/<str:reference>/reject", views.case_reject, name="case_reject"),
    path("cases/<str:reference>/resend", views.case_resend, name="case_resend"),
    path("cases/<str:reference>/note", views.case_note, name="case_note"),
    path("cases/<str:reference>/cash", views.case_cash_hand_over, name="case_cash"),
    path("charges/<int:charge_id>/waive", views.charge_waive, name="charge_waive"),
    path("open/", views.assisted_open, name="open"),
    path("open/quote/", views.assisted_quote, name="open_quote"),
    path("appointments/", views.appointment_board, name="appointments"),
    path("appointments/book", views.appointment_book, name="appointment_book"),
    path("appointments/<int:appointment_id>/cancel", views.appointment_cancel, name="appointment_cancel"),
    path("appointments/<int:appointment_id>/reschedule", views.appointment_reschedule,
         name="appointment_reschedule"),
    path("counter/", views.counter_start, name="counter"),
    path("counter/<int:visit_id>/", views.counter_visit, name="counter_visit"),
    path("counter/<int:visit_id>/confirm", views.counter_confirm, name="counter_confirm"),
    path("counter/<int:visit_id>/receipt.pdf", views.counter_receipt, name="counter_receipt"),
    path("warehouse/", views.warehouse, name="warehouse"),
    path("warehouse/destroy", views.warehouse_destroy, name="warehouse_destroy"),
    path("warehouse/exceptions/", views.exceptions, name="exceptions"),
    path("warehouse/exceptions/<int:exception_id>/resolve", views.exception_resolve, name="exception_resolve"),
    path("refunds/", views.refunds, name="refunds"),
    path("refunds/<str:reference>/approve", views.refund_approve, name="refund_approve"),
    path("refunds/<str:reference>/reject", views.refund_reject, name="refund_reject"),
    path("sla/", views.sla, name="sla"),
    path("sla.csv", views.sla_csv, name="sla_csv"),
    path("staff/", views.staff, name="staff"),
    path("staff/<int:staff_id>/unlock", views.staff_unlock, name="staff_unlock"),
    path("staff/<int:staff_id>/branch", views.staff_branch, name="staff_branch"),
]
