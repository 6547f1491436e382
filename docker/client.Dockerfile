# dfs-client: the `dfs` CLI and the `dfs-fuse` mount, FROM scratch. Find the cluster with
# DFS_NAMENODES=host:port,... (or a client.toml mounted at /etc/dfs/client.toml). The default
# command mounts the cluster at /mnt/dfs inside the container, which needs
# `--device /dev/fuse --cap-add SYS_ADMIN`; `docker run ... dfs-client dfs ls /` runs the CLI.
FROM scratch
COPY rootfs/ /
COPY dfs dfs-fuse /bin/
ENV PATH=/bin \
    NO_COLOR=1
STOPSIGNAL SIGTERM
CMD ["dfs-fuse", "/mnt/dfs"]
