FROM python:3.11-slim
WORKDIR /app
COPY . /app/
RUN pip install --no-cache-dir /app
USER nobody
CMD ["billing-sync", "up", "--host", "0.0.0.0"]
