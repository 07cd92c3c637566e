# Denoise Studio for Hugging Face Spaces (sdk: docker, app_port: 7860) or any Docker host.
#   docker build -t denoise-studio .
#   docker run -p 7860:7860 [--gpus all] [-v denoise-data:/data -e DENOISE_DATA_ROOT=/data] denoise-studio
# The PyPI torch wheel includes CUDA: the GPU is used automatically when the container has one, the CPU otherwise.
# For a smaller CPU-only image: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
FROM python:3.11-slim

ARG TORCH_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_HEADLESS=true \
    GRADIO_ANALYTICS_ENABLED=False \
    HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    DENOISE_DATA_ROOT=/home/user/app/data

# Spaces run the container as UID 1000.
RUN useradd --create-home --uid 1000 user
USER user
WORKDIR /home/user/app

COPY --chown=user requirements.txt .
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install --user --index-url "$TORCH_INDEX_URL" \
            "$(grep -E '^torch==' requirements.txt)" "$(grep -E '^torchvision==' requirements.txt)"; \
    fi \
    && pip install --user -r requirements.txt

COPY --chown=user . .
RUN mkdir -p "$DENOISE_DATA_ROOT"

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/_stcore/health', timeout=4)"
CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=7860"]
