"""Who is signed in to the console, the idle timeout, and the role check every view declares."""

from __future__ import annotations

import time
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import logout
from django.shortcuts import redirect, render

from closeout.console import roles
from closeout.console.models import StaffProfile

SEEN_KEY = "console_seen"


def current_staff(request) -> StaffProfile | None:
    """Return the signed-in staff member (password and TOTP both passed, not idle too long)."""
    user = request.user
    if not user.is_authenticated or not user.is_active:
        return None
    if not getattr(user, "is_verified", lambda: False)():
        return None
    profile = StaffProfile.objects.filter(user=user).first()
    if profile is None:
        return None
    seen = request.session.get(SEEN_KEY, 0)
    now = time.time()
    if now - seen > settings.CONSOLE_IDLE_MINUTES * 60:
        logout(request)
        return None
    request.session[SEEN_KEY] = now
    return profile


def staff_view(action: str | None):
    """Require a signed-in staff member whose role may perform `action` (None: any role)."""
    if action is not None and action not in roles.PERMISSIONS:
        raise ValueError(f"unknown console action {action}")

    def decorate(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            staff = current_staff(request)
            if staff is None:
                return redirect(f"{settings.LOGIN_URL}?{urlencode({'next': request.get_full_path()})}")
            if action is not None and not roles.can(staff.role, action):
                allowed = [str(roles.ROLE_LABELS[role]) for role in roles.ROLES if roles.can(role, action)]
                return render(request, "console/forbidden.html", {"staff": staff, "allowed": allowed}, status=403)
            request.staff = staff
            return view(request, *args, **kwargs)

        wrapped.console_action = action
        return wrapped

    return decorate
