# The app image: daphne serving agentsite. See docker-compose.yml for the whole stack.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 AGENTSITE_VAR_DIR=/var/lib/agentsite
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

RUN useradd --system --create-home --home-dir /var/lib/agentsite agentsite

COPY . .
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v0 \
    && chown -R agentsite /var/lib/agentsite
USER agentsite

EXPOSE 8000
CMD ["sh", "-c", "python manage.py migrate --noinput && exec daphne -b 0.0.0.0 -p 8000 agentsite.asgi:application"]
