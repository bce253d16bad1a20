// Traces of VM creates, exported over OTLP/HTTP when orchestrator.telemetry.otlp-endpoint names a collector.
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Orchestrator.Actors.Settings;
using Orchestrator.Actors.Telemetry;

namespace Orchestrator.Api;

public static class TracingSetup
{
    /// <summary>
    /// Listens to the product's <see cref="OrchestratorTracing"/> source and sends its spans to the collector; with no
    /// endpoint nothing listens, so no span is made and creates carry no trace context.
    /// </summary>
    public static IServiceCollection AddOrchestratorTracing(this IServiceCollection services, TelemetrySettings? telemetry, string hostId)
    {
        if (telemetry?.OtlpEndpoint is not { } endpoint)
        {
            return services;
        }

        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("orchestrator", serviceInstanceId: hostId))
            .WithTracing(tracing => tracing
                .AddSource(OrchestratorTracing.SourceName)
                .AddOtlpExporter(otlp =>
                {
                    otlp.Protocol = OtlpExportProtocol.HttpProtobuf;
                    otlp.Endpoint = new Uri(endpoint, "v1/traces"); // an explicit endpoint is used as given: the signal's path too
                    otlp.BatchExportProcessorOptions = new BatchExportProcessorOptions<System.Diagnostics.Activity> { ScheduledDelayMilliseconds = 1000 };
                }));
        return services;
    }
}
