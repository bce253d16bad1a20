using Npgsql;
using Orchestrator.Domain;

namespace Orchestrator.Actors.Hosts;

/// <summary>
/// Per-host lease rows in PostgreSQL (expiry + a revoked flag), a second fence beside the cluster's failure detector:
/// a host renews its row every heartbeat; the scheduler re-places a lost host's VMs only once the row has expired, and
/// revokes it first, so a host whose processes were frozen and thaw later finds its lease gone and kills its VMs
/// at once. Times come from the database's clock, so hosts' clocks don't matter.
/// </summary>
public sealed class HostLeaseStore(string connectionString)
{
    private const string Table = "orchestrator_host_leases";
    private volatile bool _tableReady;

    /// <summary>A starting node takes its host's lease (a fresh process has nothing running but what it adopts).</summary>
    public async Task AcquireAsync(HostId host, TimeSpan ttl, CancellationToken ct)
    {
        await ExecuteAsync($"""
            INSERT INTO {Table} (host_id, revoked, expires_at) VALUES (@host, false, now() + @ttl)
            ON CONFLICT (host_id) DO UPDATE SET revoked = false, expires_at = EXCLUDED.expires_at
            """, host, ttl, ct);
    }

    /// <summary>Extends the lease; false when it was revoked (the host was declared lost) or is missing.</summary>
    public async Task<bool> RenewAsync(HostId host, TimeSpan ttl, CancellationToken ct) =>
        await ExecuteAsync($"UPDATE {Table} SET expires_at = now() + @ttl WHERE host_id = @host AND NOT revoked", host, ttl, ct) == 1;

    /// <summary>How long until the lease expires (zero when it has, or there is none).</summary>
    public async Task<TimeSpan> RemainingAsync(HostId host, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await using var command = new NpgsqlCommand(
            $"SELECT GREATEST(EXTRACT(EPOCH FROM expires_at - now()), 0) FROM {Table} WHERE host_id = @host", connection);
        command.Parameters.AddWithValue("host", host.Value);
        var seconds = await command.ExecuteScalarAsync(ct);
        return seconds is null or DBNull ? TimeSpan.Zero : TimeSpan.FromSeconds(Convert.ToDouble(seconds, System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Marks the lease revoked: its holder can no longer renew it.</summary>
    public Task RevokeAsync(HostId host, CancellationToken ct) =>
        ExecuteAsync($"UPDATE {Table} SET revoked = true WHERE host_id = @host", host, TimeSpan.Zero, ct);

    private async Task<int> ExecuteAsync(string sql, HostId host, TimeSpan ttl, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.AddWithValue("host", host.Value);
        command.Parameters.AddWithValue("ttl", ttl);
        return await command.ExecuteNonQueryAsync(ct);
    }

    private async Task<NpgsqlConnection> OpenAsync(CancellationToken ct)
    {
        var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        if (!_tableReady)
        {
            await using var create = new NpgsqlCommand(
                $"CREATE TABLE IF NOT EXISTS {Table} (host_id text PRIMARY KEY, revoked boolean NOT NULL, expires_at timestamptz NOT NULL)",
                connection);
            await create.ExecuteNonQueryAsync(ct);
            _tableReady = true;
        }

        return connection;
    }
}
