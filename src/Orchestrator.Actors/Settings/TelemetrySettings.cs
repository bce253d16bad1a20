using Akka.Configuration;

namespace Orchestrator.Actors.Settings;

/// <summary>The <c>orchestrator.telemetry</c> section: where the node sends its traces (OTLP over HTTP), if anywhere.</summary>
/// <param name="OtlpEndpoint">the collector's base address (<c>http://host:4318</c>); null: traces are off (the default).</param>
public sealed record TelemetrySettings(Uri? OtlpEndpoint)
{
    public static readonly TelemetrySettings Off = new((Uri?)null);

    /// <param name="c">the <c>orchestrator.telemetry</c> section, or null for the defaults.</param>
    public static TelemetrySettings Create(Config? c)
    {
        var endpoint = c?.GetString("otlp-endpoint", "") ?? "";
        if (endpoint.Length == 0)
        {
            return Off;
        }

        return Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.Query.Length == 0
            ? new TelemetrySettings(uri)
            : throw new ConfigurationException(
                $"orchestrator.telemetry.otlp-endpoint: '{endpoint}' is not an http(s) address such as http://127.0.0.1:4318");
    }
}
