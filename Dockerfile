FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir -e .
COPY . .
RUN useradd --create-home premier && mkdir -p /app/var && chown -R premier /app/var
USER premier
EXPOSE 8000
# Workers, threads, connections per worker and the timeout: gunicorn.conf.py (read from /app).
CMD ["gunicorn"]
