# One image for web, worker, beat and watchdog (docker-compose.yml picks the command).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 1000 heyloyalty
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# collectstatic needs settings; the keys are throw-aways used for this step only.
RUN SECRET_KEY=build-only-$(python -c "import secrets; print(secrets.token_urlsafe(64))") \
    FIELD_ENCRYPTION_KEYS=build:$(python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())") \
    DEBUG=0 ALLOWED_HOSTS=build python manage.py collectstatic --noinput -v 0 \
 && mkdir -p /app/var /backups && chown -R heyloyalty /app/var /backups
USER heyloyalty
EXPOSE 8000
CMD ["python", "-m", "heyloyalty.web"]
