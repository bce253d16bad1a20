using Akka.Configuration;

namespace Orchestrator.Actors.Settings;

/// <summary>
/// The <c>orchestrator.telemetry</c> section: where the node sends its traces (OTLP over HTTP), if anywhere, and how
/// many VMs and hosts its per-VM and per-host metrics are sized for.
/// </summary>
/// <param name="OtlpEndpoint">the collector's base address (<c>http://host:4318</c>); null: traces are off (the default).</param>
public sealed record TelemetrySettings(Uri? OtlpEndpoint)
{
    public const int DefaultMaxVms = 20_000;
    public const int DefaultMaxHosts = 2_000;

    public static readonly TelemetrySettings Off = new((Uri?)null);

    /// <summary>
    /// The most VMs whose per-VM series one scrape carries (the scheduler's node reports every VM of the cluster). The
    /// exporter keeps a fixed table per metric of this size (about 150 bytes a series), and drops what is beyond it.
    /// </summary>
    public int MaxVms { get; init; } = DefaultMaxVms;

    /// <summary>The most hosts whose per-host series one scrape carries.</summary>
    public int MaxHosts { get; init; } = DefaultMaxHosts;

    /// <param name="c">the <c>orchestrator.telemetry</c> section, or null for the defaults.</param>
    public static TelemetrySettings Create(Config? c)
    {
        var sized = Off with
        {
            MaxVms = AtLeastOne(c, "max-vms", DefaultMaxVms),
            MaxHosts = AtLeastOne(c, "max-hosts", DefaultMaxHosts),
        };
        var endpoint = c?.GetString("otlp-endpoint", "") ?? "";
        if (endpoint.Length == 0)
        {
            return sized;
        }

        return Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.Query.Length == 0
            ? sized with { OtlpEndpoint = uri }
            : throw new ConfigurationException(
                $"orchestrator.telemetry.otlp-endpoint: '{endpoint}' is not an http(s) address such as http://127.0.0.1:4318");
    }

    private static int AtLeastOne(Config? c, string key, int fallback)
    {
        var value = c?.GetInt(key, fallback) ?? fallback;
        return value is >= 1 and <= 10_000_000
            ? value
            : throw new ConfigurationException($"orchestrator.telemetry.{key}: {value} is out of range (1 to 10,000,000)");
    }
}
