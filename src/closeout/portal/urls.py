from django.urls import path

from closeout.portal import views

app_name = "portal"
urlpatterns = [
    path("", views.home, name="home"),
    path("code/", views.code, name="code"),
    path("code/new/", views.code_resend, name="code_resend"),
    path("account/", views.account, name="account"),
    path("account/pay/", views.account_pay, name="account_pay"),
    path("quote/", views.quote, name="quote"),
    path("branch/", views.branch_visit, name="branch"),
    path("check/", views.check, name="check"),
    path("sign-out/", views.sign_out, name="sign_out"),
    path("case/<str:reference>/", views.case, name="case"),
    path("case/<str:reference>/withdraw/", views.case_withdraw, name="case_withdraw"),
    path("case/<str:reference>/return-label.pdf", views.case_label, name="case_label"),
]
