using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Orchestrator.Actors.Settings;

namespace Orchestrator.Node.Logging;

/// <summary>
/// The node's one log pipeline (Microsoft.Extensions.Logging; Akka's events join it through
/// <see cref="Orchestrator.Actors.Hosting.MelLogger"/>): levels from <c>orchestrator.logging</c>, one line per entry in
/// the configured format, on the console and in the log file when one is set.
/// </summary>
public static class NodeLogging
{
    /// <summary>Text lines carry the date: a node's log file outlives a day.</summary>
    public const string TextTimestampFormat = "yyyy-MM-dd HH:mm:ss.fff ";

    public const string JsonTimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffzzz";

    /// <param name="console">false: nothing on the console (the demo prints its own summary there).</param>
    public static ILoggingBuilder AddNodeLogging(this ILoggingBuilder logging, LoggingSettings settings, bool console)
    {
        logging.ClearProviders();
        logging.SetMinimumLevel(settings.Level);
        foreach (var (category, level) in settings.Levels)
        {
            logging.AddFilter(category, level);
        }

        // The console provider brings the formatters, which the file uses too: one format for both.
        if (settings.Format == LogFormat.Json)
        {
            logging.AddJsonConsole(json =>
            {
                json.TimestampFormat = JsonTimestampFormat;
                json.IncludeScopes = false;
                json.JsonWriterOptions = new System.Text.Json.JsonWriterOptions
                {
                    Indented = false,
                    // A log line is no HTML page: "+" and "'" stay as they are.
                    Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
                };
            });
        }
        else
        {
            logging.AddSimpleConsole(text =>
            {
                text.SingleLine = true;
                text.TimestampFormat = TextTimestampFormat;
                text.IncludeScopes = false;
                text.ColorBehavior = LoggerColorBehavior.Disabled;
            });
        }

        if (!console)
        {
            // A rule for one provider wins over every category rule: the console provider gets nothing.
            logging.AddFilter<ConsoleLoggerProvider>(null, LogLevel.None);
        }

        if (settings.File is { } file)
        {
            var formatterName = settings.Format == LogFormat.Json ? ConsoleFormatterNames.Json : ConsoleFormatterNames.Simple;
            logging.Services.AddSingleton<ILoggerProvider>(services => new FileLoggerProvider(
                file, services.GetServices<ConsoleFormatter>().Single(f => f.Name == formatterName)));
        }

        return logging;
    }
}
