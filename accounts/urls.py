from django.urls import path

from accounts import views

app_name = "accounts"

# There is deliberately no password-reset URL: a lost password is replaced by the
# customer's account manager, never mailed.
urlpatterns = [
    path("", views.home, name="home"),
    path("signin/", views.SignInView.as_view(), name="login"),
    path("signout/", views.SignOutView.as_view(), name="logout"),
    path("password/", views.PasswordChangeView.as_view(), name="password_change"),
]
